//! SQL LIKE matching (`%` any run, `_` one character), precompiled and matched without backtracking blow-up:
//! the classic two-pointer wildcard algorithm is O(text × pattern) at worst.

/// One element of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(char),
    One,
    Any,
}

/// A compiled LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikePattern(Vec<Tok>);

impl LikePattern {
    pub(crate) fn new(pattern: &str) -> Self {
        let mut toks = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let t = match c {
                '%' => Tok::Any,
                '_' => Tok::One,
                c => Tok::Char(c),
            };
            // Consecutive `%` mean the same as one.
            if !(t == Tok::Any && toks.last() == Some(&Tok::Any)) {
                toks.push(t);
            }
        }
        LikePattern(toks)
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let pat = &self.0;
        let (mut t, mut p) = (0usize, 0usize);
        // Where the last `%` was and which text position it currently swallows up to.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pat.get(p) {
                Some(Tok::Char(c)) if *c == text[t] => {
                    t += 1;
                    p += 1;
                }
                Some(Tok::One) => {
                    t += 1;
                    p += 1;
                }
                Some(Tok::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|t| *t == Tok::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    #[test]
    fn like() {
        let m = |p: &str, t: &str| LikePattern::new(p).matches(t);
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(m("a%", "abcd"));
        assert!(m("%d", "abcd"));
        assert!(m("%b%", "abcd"));
        assert!(m("a_c", "abc"));
        assert!(!m("a_c", "ac"));
        assert!(m("%", ""));
        assert!(m("a%b%c", "aXXbYYc"));
        assert!(!m("a%b%c", "aXXbYY"));
        assert!(m("é_", "éx"));
        let long = "a".repeat(5000);
        assert!(!m(&("%a".repeat(50) + "b"), &long));
    }
}
