//! Pod name resolution: the content of each pod's `/etc/hosts`.
//!
//! Every pod that has an address gets the records of its stable network identity
//! (`<hostname>.<subdomain>.<ns>.svc.<domain>`, `<hostname>.<subdomain>.<ns>.svc`,
//! `<hostname>.<subdomain>`) in the hosts file of every pod, whether or not it is Ready
//! (like a headless Service with `publishNotReadyAddresses`). A pod's own file also maps
//! its own hostname and pod name to its address, and `localhost` to 127.0.0.1.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What DNS needs to know about one pod that has an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub subdomain: Option<String>,
    pub ip: Ipv4Addr,
}

/// The names under which other pods reach `r` (empty without a subdomain).
pub fn names_of(r: &PodRecord, domain: &str) -> Vec<String> {
    match r.subdomain.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(sub) => {
            let base = format!("{}.{sub}", r.hostname);
            vec![
                format!("{base}.{}.svc.{domain}", r.namespace),
                format!("{base}.{}.svc", r.namespace),
                base,
            ]
        }
    }
}

/// The hosts file of pod `own` (key `<ns>_<pod>`), given all records by pod key.
pub fn hosts_content(own: &str, records: &BTreeMap<String, PodRecord>, domain: &str) -> String {
    let mut out = String::from("# Written by the tandem local runtime.\n127.0.0.1\tlocalhost\n");
    if let Some(me) = records.get(own) {
        let mut names = names_of(me, domain);
        for n in [&me.hostname, &me.name] {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        out.push_str(&format!("{}\t{}\n", me.ip, names.join(" ")));
    }
    for (key, r) in records {
        if key == own {
            continue;
        }
        let names = names_of(r, domain);
        if !names.is_empty() {
            out.push_str(&format!("{}\t{}\n", r.ip, names.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, sub: Option<&str>, ip: [u8; 4]) -> PodRecord {
        PodRecord {
            namespace: "default".into(),
            name: name.into(),
            hostname: name.into(),
            subdomain: sub.map(String::from),
            ip: Ipv4Addr::from(ip),
        }
    }

    #[test]
    fn hosts_have_fqdn_short_forms_and_own_name() {
        let mut m = BTreeMap::new();
        m.insert(
            "default_r-0".to_string(),
            rec("r-0", Some("r-hl"), [10, 0, 0, 2]),
        );
        m.insert(
            "default_r-1".to_string(),
            rec("r-1", Some("r-hl"), [10, 0, 0, 3]),
        );
        m.insert("default_lone".to_string(), rec("lone", None, [10, 0, 0, 4]));
        let h = hosts_content("default_r-1", &m, "cluster.local");
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains(
            "10.0.0.2\tr-0.r-hl.default.svc.cluster.local r-0.r-hl.default.svc r-0.r-hl\n"
        ));
        assert!(h.contains(
            "10.0.0.3\tr-1.r-hl.default.svc.cluster.local r-1.r-hl.default.svc r-1.r-hl r-1\n"
        ));
        // A pod without subdomain has no name for others.
        assert!(!h.contains("10.0.0.4"));
        let own = hosts_content("default_lone", &m, "cluster.local");
        assert!(own.contains("10.0.0.4\tlone\n"));
    }
}
