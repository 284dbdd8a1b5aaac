//! Which networks PingTower may reach on a tenant's behalf.

use std::sync::Arc;

/// Address ranges that PingTower may not reach for a tenant (an operator's setting for hosting
/// many tenants: link-local and cloud metadata addresses, private networks). Checked on the
/// resolved address of every connection a check or a notification channel makes, redirects
/// included, so a DNS name or a redirect pointing inside a blocked range does not get around
/// it. Empty by default.
#[derive(Clone, Default, Debug)]
pub struct Blocklist(Arc<[ipnet::IpNet]>);

impl Blocklist {
    /// Parses `10.0.0.0/8, 169.254.0.0/16, fd00::/8`; a bare address is a single host.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{item}` is not an address range like 10.0.0.0/8"))?;
            nets.push(net);
        }
        Ok(Self(nets.into()))
    }

    /// The blocked range holding `ip`, if any (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn blocks(&self, ip: std::net::IpAddr) -> Option<ipnet::IpNet> {
        // The IPv4 address inside an IPv4-mapped or a NAT64 (64:ff9b::/96) address counts too:
        // on a network with NAT64, the latter reaches it.
        let inner = match ip {
            std::net::IpAddr::V6(v6) => {
                let o = v6.octets();
                let nat64 = o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
                v6.to_ipv4_mapped()
                    .or_else(|| nat64.then(|| std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])))
                    .map(std::net::IpAddr::V4)
            }
            std::net::IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .find(|n| n.contains(&ip) || inner.is_some_and(|i| n.contains(&i)))
            .copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Blocklist {
    /// Why `host` may not be reached when `ip`, one of its addresses, is blocked; `None` when
    /// it may. The sentence names the operator's range but not the address, so a tenant cannot
    /// map internal names to addresses through it.
    pub fn refusal(&self, host: &str, ip: std::net::IpAddr) -> Option<String> {
        self.blocks(ip).map(|net| {
            format!("blocked: {host} resolves into {net}, which this server's operator does not allow tenants to reach")
        })
    }

    /// The refusal for the first of `ips` that is blocked. Every address a name resolves to must
    /// be allowed: a connection to whichever answers first must not end up in a blocked range.
    pub fn refusal_of_any(
        &self,
        host: &str,
        ips: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Option<String> {
        ips.into_iter().find_map(|ip| self.refusal(host, ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_v6_addresses_count_as_v4_and_bare_addresses_are_hosts() {
        let b = Blocklist::parse("169.254.0.0/16, 10.1.2.3").unwrap();
        assert!(b.blocks("169.254.169.254".parse().unwrap()).is_some());
        assert!(
            b.blocks("::ffff:169.254.169.254".parse().unwrap())
                .is_some()
        );
        assert!(
            b.blocks("64:ff9b::a9fe:a9fe".parse().unwrap()).is_some(),
            "NAT64"
        );
        assert!(b.blocks("10.1.2.3".parse().unwrap()).is_some());
        assert!(b.blocks("10.1.2.4".parse().unwrap()).is_none());
        assert!(Blocklist::parse("10.0.0.0/8, nonsense").is_err());
        let why = b.refusal("meta", "169.254.1.1".parse().unwrap()).unwrap();
        assert!(
            why.starts_with("blocked: meta ")
                && why.contains("169.254.0.0/16")
                && !why.contains("169.254.1.1"),
            "{why}"
        );
    }
}
