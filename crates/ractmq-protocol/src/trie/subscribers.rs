//! The subscriptions whose filter ends at one trie node.
//!
//! Matching iterates them for every message published, and iterating an `imbl` map allocates its traversal
//! stack each time: in point-to-point traffic (one subscriber per topic) that allocation was most of the cost
//! of visiting a node. So a few subscriptions are kept in a shared vector, copied on write like the rest of
//! the trie (a snapshot being read keeps the old one); past `FEW` they move to a map, so that a filter with
//! many subscribers still changes in O(log n).

use std::hash::Hash;
use std::sync::Arc;

use super::Map;

/// The most subscriptions kept in a vector. Back from a map at half as many, so that a count moving around
/// the bound does not convert at every change.
const FEW: usize = 8;

/// The subscriptions at one node: a shared vector while few, a persistent map when many.
#[derive(Debug, Clone)]
pub enum Subscribers<K: Clone + Hash + Eq, V: Clone> {
    /// At most `FEW`, in no particular order.
    Few(Arc<Vec<(K, V)>>),
    /// More than `FEW` / 2.
    Many(Map<K, V>),
}

impl<K: Clone + Hash + Eq, V: Clone> Default for Subscribers<K, V> {
    fn default() -> Self {
        Subscribers::Few(Arc::default())
    }
}

impl<K: Clone + Hash + Eq, V: Clone> Subscribers<K, V> {
    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        match self {
            Subscribers::Few(few) => few.len(),
            Subscribers::Many(many) => many.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscription of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        match self {
            Subscribers::Few(few) => few.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Subscribers::Many(many) => many.get(key),
        }
    }

    /// Every subscription, in no particular order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Subscribers::Few(few) => Iter::Few(few.iter()),
            Subscribers::Many(many) => Iter::Many(many.iter()),
        }
    }

    /// Add or replace the subscription of `key`; returns the one replaced.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            Subscribers::Few(few) => {
                if let Some(i) = few.iter().position(|(k, _)| *k == key) {
                    return Some(std::mem::replace(&mut Arc::make_mut(few)[i].1, value));
                }
                if few.len() < FEW {
                    Arc::make_mut(few).push((key, value));
                } else {
                    let mut many: Map<K, V> = few.iter().cloned().collect();
                    many.insert(key, value);
                    *self = Subscribers::Many(many);
                }
                None
            }
            Subscribers::Many(many) => many.insert(key, value),
        }
    }

    /// Remove the subscription of `key`; returns it.
    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            Subscribers::Few(few) => {
                let i = few.iter().position(|(k, _)| k == key)?;
                Some(Arc::make_mut(few).swap_remove(i).1)
            }
            Subscribers::Many(many) => {
                let removed = many.remove(key);
                if many.len() <= FEW / 2 {
                    let few: Vec<(K, V)> = many.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    *self = Subscribers::Few(Arc::new(few));
                }
                removed
            }
        }
    }
}

impl<'a, K: Clone + Hash + Eq, V: Clone> IntoIterator for &'a Subscribers<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

/// An iterator over [`Subscribers`].
pub enum Iter<'a, K, V> {
    /// Over the vector.
    Few(std::slice::Iter<'a, (K, V)>),
    /// Over the map.
    Many(imbl::hashmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<(&'a K, &'a V)> {
        match self {
            Iter::Few(few) => few.next().map(|(k, v)| (k, v)),
            Iter::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Few(few) => few.size_hint(),
            Iter::Many(many) => many.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &Subscribers<u32, u32>) -> Vec<u32> {
        let mut keys: Vec<u32> = s.iter().map(|(k, _)| *k).collect();
        keys.sort();
        keys
    }

    #[test]
    fn grows_into_a_map_and_shrinks_back_keeping_every_entry() {
        let mut s = Subscribers::default();
        for i in 0..20 {
            assert_eq!(s.insert(i, i), None);
            assert_eq!(s.insert(i, i + 100), Some(i), "replaced, not added");
        }
        assert!(matches!(s, Subscribers::Many(_)));
        assert_eq!(keys(&s), (0..20).collect::<Vec<_>>());
        for i in 0..17 {
            assert_eq!(s.remove(&i), Some(i + 100));
            assert_eq!(s.remove(&i), None);
        }
        assert!(matches!(s, Subscribers::Few(_)));
        assert_eq!(keys(&s), vec![17, 18, 19]);
        assert_eq!(s.get(&18), Some(&118));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_clone_is_unchanged_by_later_writes() {
        let mut s = Subscribers::default();
        s.insert(1, 1);
        let snapshot = s.clone();
        s.insert(1, 2);
        s.insert(2, 2);
        s.remove(&1);
        assert_eq!(snapshot.get(&1), Some(&1));
        assert_eq!(keys(&snapshot), vec![1]);
        assert_eq!(keys(&s), vec![2]);
    }
}
