//! The roles one `pingtower` process can run.

use std::collections::BTreeSet;

pingtower_core::wire_enum! {
    /// A part of PingTower that can run in its own process.
    pub enum Role ("role") {
        /// HTTP: API, dashboard, status pages, push endpoints, /metrics.
        Api => "api",
        /// Knows every monitor's next due time and publishes due checks.
        Scheduler => "scheduler",
        /// Runs due checks and writes their results.
        Worker => "worker",
        /// Evaluates results into incidents and delivers notifications.
        Notifier => "notifier",
        /// Folds results into rollups and enforces retention.
        Stats => "stats",
        /// Keeps tenants' analytics events: retention, and the partitions ahead.
        Analytics => "analytics",
    }
}

/// The roles of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(BTreeSet<Role>);

impl RoleSet {
    pub fn all() -> Self {
        Self(Role::ALL.iter().copied().collect())
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn is_all(&self) -> bool {
        self.0.len() == Role::ALL.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    /// Parses `all` or a comma-separated list such as `api,worker`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut roles = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                return Ok(Self::all());
            }
            roles.insert(part.parse::<Role>().map_err(|e| e.to_string())?);
        }
        if roles.is_empty() {
            return Err("no role given; use `all` or a list such as `api,worker`".to_owned());
        }
        Ok(Self(roles))
    }
}

impl std::fmt::Display for RoleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let names: Vec<_> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_all() {
        assert!(RoleSet::parse("all").unwrap().is_all());
        assert!(
            RoleSet::parse("api,scheduler,worker,notifier,stats,analytics")
                .unwrap()
                .is_all()
        );
        let two = RoleSet::parse(" api , worker,api").unwrap();
        assert!(
            two.contains(Role::Api) && two.contains(Role::Worker) && !two.contains(Role::Stats)
        );
        assert_eq!(two.to_string(), "api,worker");
        assert!(RoleSet::parse("api,pinger").unwrap_err().contains("pinger"));
        assert!(RoleSet::parse(" , ").is_err());
    }
}
