//! `ractmq ctl supervision` (or `tree`): the node's supervision tree as it runs now, drawn as an indented
//! tree like the one in supervision.md, through the node's REST API.

use serde_json::Value;

use super::{s, Api, Failed, Output};

pub(super) fn supervision(api: &Api, out: Output) -> Result<(), Failed> {
    let v = api.json("GET", "/supervision", None)?;
    out.show(&v, &|v| print!("{}", render(v)));
    Ok(())
}

/// The whole answer as text: a line on the node, then the tree.
fn render(v: &Value) -> String {
    let restarts = &v["restarts"];
    let mut text = format!(
        "node {}: restarts since start: {} sessions, {} shards, {} others{}\n",
        s(&v["node"]),
        s(&restarts["session"]),
        s(&restarts["shard"]),
        s(&restarts["other"]),
        if v["chaos"] == Value::Bool(true) {
            " (chaos on: kill with ractmq ctl chaos kill KIND TARGET)"
        } else {
            ""
        }
    );
    text += &format!("{}\n", line(&v["tree"]));
    branches(&v["tree"], "", &mut text);
    text
}

/// One actor: its name, then what it is and how it runs.
fn line(node: &Value) -> String {
    let mut about = vec![s(&node["kind"])];
    if let Some(strategy) = node["strategy"].as_str() {
        about.push(strategy.to_string());
    }
    let intensity = &node["intensity"];
    if intensity.is_object() {
        about.push(format!(
            "{} restarts in {} s",
            s(&intensity["max_restarts"]),
            s(&intensity["within_s"])
        ));
    }
    about.push(s(&node["status"]));
    match node["restarts"].as_u64() {
        Some(0) | None => {}
        Some(1) => about.push("restarted once".into()),
        Some(n) => about.push(format!("restarted {n} times")),
    }
    if let Some(h) = node["hibernated"].as_u64() {
        about.push(format!("{h} hibernated"));
    }
    let kill = &node["kill"];
    if kill.is_object() {
        about.push(format!("kill: {} {}", s(&kill["kind"]), s(&kill["target"])));
    }
    format!("{}  ({})", s(&node["name"]), about.join(", "))
}

/// The children of `node`, each on its line below `prefix`, and theirs.
fn branches(node: &Value, prefix: &str, text: &mut String) {
    let children = node["children"].as_array().map(Vec::as_slice).unwrap_or_default();
    let more = node["more"].as_u64().unwrap_or(0);
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len() && more == 0;
        let (branch, below) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        *text += &format!("{prefix}{branch}{}\n", line(child));
        branches(child, &format!("{prefix}{below}"), text);
    }
    if more > 0 {
        *text += &format!("{prefix}└── … and {more} more\n");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_tree_is_drawn_as_in_supervision_md() {
        let leaf = |name: &str, kill: serde_json::Value| {
            json!({"name": name, "kind": "worker", "status": "running", "strategy": null, "intensity": null,
                "restarts": 0, "children_count": 0, "children": [], "more": 0, "kill": kill})
        };
        let mut shard = leaf("shard-0", json!({"kind": "shard", "target": "0"}));
        shard["restarts"] = json!(2);
        let v = json!({"node": "local", "chaos": false, "restarts": {"session": 0, "shard": 2, "other": 0},
            "tree": {"name": "root", "kind": "supervisor", "status": "running", "strategy": "one-for-one",
                "intensity": {"max_restarts": 5, "within_s": 30}, "restarts": 0, "children_count": 2, "more": 0,
                "kill": null, "children": [
                    {"name": "shards", "kind": "supervisor", "status": "running", "strategy": "one-for-one",
                        "intensity": {"max_restarts": 10, "within_s": 10}, "restarts": 0, "children_count": 3,
                        "more": 2, "kill": null, "children": [shard]},
                    leaf("sys", json!(null))]}});
        assert_eq!(
            super::render(&v),
            "node local: restarts since start: 0 sessions, 2 shards, 0 others\n\
             root  (supervisor, one-for-one, 5 restarts in 30 s, running)\n\
             ├── shards  (supervisor, one-for-one, 10 restarts in 10 s, running)\n\
             │   ├── shard-0  (worker, running, restarted 2 times, kill: shard 0)\n\
             │   └── … and 2 more\n\
             └── sys  (worker, running)\n"
        );
    }
}
