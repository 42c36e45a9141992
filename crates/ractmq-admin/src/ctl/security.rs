//! `ractmq ctl users`, `banned`, `flapping` and `acl`: the built-in user database, the banned list, flapping
//! detection, and the ACL in force and reloading it with the password files, through the node's REST API.

use clap::Subcommand;
use serde_json::json;

use super::{print_table, s, segment, Api, Failed, Output};

/// `ractmq ctl users ...`
#[derive(Subcommand)]
pub(crate) enum UsersCommand {
    /// The users of the built-in database.
    List,
    /// Add a user (stored as an argon2id hash and SCRAM keys; the password never is).
    Add {
        name: String,
        password: String,
        /// Skips authorization (ACLs) and may take over any session.
        #[arg(long)]
        superuser: bool,
    },
    /// Change a user's password.
    Passwd { name: String, password: String },
    /// Remove a user.
    Delete { name: String },
}

/// `ractmq ctl banned ...`
#[derive(Subcommand)]
pub(crate) enum BannedCommand {
    /// The bans in force.
    List,
    /// Ban a client id, a user name or an address: `clientid ID`, `username NAME` or `peerhost ADDR|CIDR`.
    /// Its connected clients are disconnected; new CONNECTs get 0x8A Banned.
    Add {
        /// clientid, username or peerhost.
        kind: String,
        who: String,
        /// Seconds; without it, until deleted.
        #[arg(long)]
        duration: Option<u64>,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban.
    Delete { kind: String, who: String },
}

/// `ractmq ctl acl ...`
#[derive(Subcommand)]
pub(crate) enum AclCommand {
    /// The rules in force, in order (the first that matches decides).
    List {
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Read the ACL file and the password file again (connected clients get the new rules).
    Reload,
}

pub(super) fn users(api: &Api, out: Output, command: &UsersCommand) -> Result<(), Failed> {
    match command {
        UsersCommand::List => {
            let v = api.json("GET", "/users", None)?;
            out.show(&v, &|v| {
                print_table(
                    &["NAME", "SUPERUSER", "SCRAM"],
                    &["name", "superuser", "scram"],
                    &v["data"],
                );
                if v["persisted"] == json!(false) {
                    println!("(in memory: start the node with --user-db FILE to keep users across restarts)");
                }
            });
        }
        UsersCommand::Add {
            name,
            password,
            superuser,
        } => {
            let body = json!({"name": name, "password": password, "superuser": superuser});
            let v = api.json("POST", "/users", Some(body))?;
            out.show(&v, &|_| println!("added user {name}"));
        }
        UsersCommand::Passwd { name, password } => {
            let path = format!("/users/{}", segment("user name", name)?);
            let v = api.json("PUT", &path, Some(json!({"password": password})))?;
            out.show(&v, &|_| println!("changed the password of {name}"));
        }
        UsersCommand::Delete { name } => {
            let v = api.json("DELETE", &format!("/users/{}", segment("user name", name)?), None)?;
            out.show(&v, &|_| println!("deleted user {name}"));
        }
    }
    Ok(())
}

pub(super) fn banned(api: &Api, out: Output, command: &BannedCommand) -> Result<(), Failed> {
    match command {
        BannedCommand::List => {
            let v = api.json("GET", "/banned", None)?;
            out.show(&v, &|v| {
                print_table(
                    &["AS", "WHO", "REASON", "BY", "UNTIL"],
                    &["as", "who", "reason", "by", "until"],
                    &v["data"],
                )
            });
        }
        BannedCommand::Add {
            kind,
            who,
            duration,
            reason,
        } => {
            let body = json!({"as": kind, "who": who, "duration_s": duration, "reason": reason});
            let v = api.json("POST", "/banned", Some(body))?;
            out.show(&v, &|v| match v["until"].as_u64() {
                Some(until) => println!("banned {kind} {who} until {until} (unix time)"),
                None => println!("banned {kind} {who}"),
            });
        }
        BannedCommand::Delete { kind, who } => {
            let path = format!("/banned/{}/{}", segment("kind", kind)?, segment("value", who)?);
            let v = api.json("DELETE", &path, None)?;
            out.show(&v, &|_| println!("lifted the ban of {kind} {who}"));
        }
    }
    Ok(())
}

pub(super) fn flapping(api: &Api, out: Output) -> Result<(), Failed> {
    let v = api.json("GET", "/flapping", None)?;
    out.show(&v, &|v| {
        let config = &v["config"];
        if v["enabled"] != json!(true) {
            println!("flapping detection is off (start the node with --flapping-detect)");
        } else {
            println!(
                "a client id that connects {} times within {} s is banned for {} s; {} client ids counted now",
                s(&config["max_count"]),
                s(&config["window_s"]),
                s(&config["ban_s"]),
                s(&v["tracked"])
            );
        }
        print_table(
            &["AS", "WHO", "REASON", "UNTIL"],
            &["as", "who", "reason", "until"],
            &v["banned"],
        );
    });
    Ok(())
}

pub(super) fn acl(api: &Api, out: Output, command: &AclCommand) -> Result<(), Failed> {
    match command {
        AclCommand::List { page, limit } => {
            let v = api.json("GET", &format!("/acl?page={page}&limit={limit}"), None)?;
            out.show(&v, &|v| {
                match v["file"].as_str() {
                    Some(file) => println!(
                        "{file} ({} format): {} rules; no match: {}; a denial: {}",
                        s(&v["format"]),
                        s(&v["count"]),
                        s(&v["no_match"]),
                        s(&v["deny_action"])
                    ),
                    None => println!("no ACL file: what nothing else decides is allowed"),
                }
                if v["http_authz"] == json!(true) {
                    println!("an HTTP service is asked what the rules leave undecided");
                }
                if v["jwt_claims"] == json!(true) {
                    println!("clients' JWT claims may carry rules, tried before these");
                }
                let first = (page.saturating_sub(1)).saturating_mul(*limit);
                let mut numbered = v["rules"].clone();
                for (i, rule) in numbered.as_array_mut().into_iter().flatten().enumerate() {
                    rule["n"] = json!(first + i + 1);
                }
                if v["count"].as_u64().unwrap_or(0) > 0 {
                    print_table(
                        &["#", "PERMISSION", "ACTION", "TOPIC", "WHO"],
                        &["n", "permission", "action", "topic", "who"],
                        &numbered,
                    );
                }
            });
        }
        AclCommand::Reload => {
            let v = api.json("POST", "/acl/reload", None)?;
            out.show(&v, &|v| println!("reloaded {}", s(&v["reloaded"])));
        }
    }
    Ok(())
}
