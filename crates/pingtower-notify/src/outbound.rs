//! Every connection a channel makes for a tenant goes through here: the operator's blocklist is
//! applied to every address a name resolves to (so a DNS name cannot point inside a blocked
//! range), to address literals, and to each redirect hop; proxies from the environment are not
//! used (they would resolve and connect where the blocklist cannot see).
//!
//! Redirects are not followed: a provider that moved is reported with where it moved to, and
//! the person fixes the channel's URL. Following them would send a webhook's custom headers
//! and signature to wherever the first server pointed.

use crate::NotifyError;
use pingtower_core::net::Blocklist;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The HTTP client and resolver of notification channels, bound to the blocklist.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    blocked: Blocklist,
}

impl std::ops::Deref for Outbound {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Resolves names for the HTTP client and refuses any that resolve into a blocked range.
struct Resolver(Blocklist);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let blocked = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&blocked, &host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a host cannot be connected to.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// It resolves into a range the operator blocked: trying again will not help.
    #[error("{0}")]
    Blocked(String),
    /// It does not resolve (now).
    #[error("{0}")]
    Unresolved(String),
}

impl Refused {
    /// Whether an error, or any error it was caused by, is a refusal by the blocklist.
    pub fn is_blocked(e: &(dyn std::error::Error + 'static)) -> bool {
        std::iter::successors(Some(e), |e| e.source())
            .any(|e| matches!(e.downcast_ref::<Refused>(), Some(Refused::Blocked(_))))
    }
}

/// The addresses of `host` (an address literal or a name), every one of them allowed.
pub async fn resolve(
    blocked: &Blocklist,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refused> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Refused::Unresolved(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if let Some(refused) = blocked.refusal_of_any(host, addrs.iter().map(SocketAddr::ip)) {
        return Err(Refused::Blocked(refused));
    }
    if addrs.is_empty() {
        return Err(Refused::Unresolved(format!("{host} has no address")));
    }
    Ok(addrs)
}

impl Outbound {
    pub fn new(blocked: Blocklist) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver(blocked.clone())))
            .build()
            .map_err(|e| NotifyError::Http(e.to_string()))?;
        Ok(Self { client, blocked })
    }

    pub fn blocklist(&self) -> &Blocklist {
        &self.blocked
    }

    /// `Err` with the reason when a request to `url` may not be made: a scheme other than
    /// HTTP(S), or an address literal in a blocked range (names are checked when resolved).
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{}` URLs cannot be sent to", url.scheme()));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err("the URL has no host".into()),
        };
        match self.blocked.refusal(url.host_str().unwrap_or_default(), ip) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }
}
