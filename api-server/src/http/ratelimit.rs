//! Per-client rate limits (GCRA via governor): one budget for `/api/*`, a much stricter one for
//! login, register and refresh. Over budget answers 429 with `Retry-After`. Clients are told
//! apart by peer address, or by `X-Forwarded-For` when the peer is a trusted proxy; an IPv6
//! client by its /64, the block one subscriber gets (rotating within it is free).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::http::state::AppState;

pub struct RateLimits {
    api: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

fn nonzero(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, trusted_proxies: Vec<IpNet>) -> Self {
        let api = nonzero(settings.per_second).map(|rate| {
            let burst = nonzero(settings.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let auth = nonzero(settings.auth_per_minute).map(|rate| {
            let burst = nonzero(settings.auth_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            api,
            auth,
            trusted_proxies,
        }
    }

    /// Drops idle clients' state so the maps do not grow without bound.
    pub fn housekeeping(&self) {
        for limiter in [&self.api, &self.auth].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn check(
        limiter: Option<&DefaultKeyedRateLimiter<IpAddr>>,
        client: IpAddr,
    ) -> Result<(), ApiError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&rate_key(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many_requests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        client_ip(headers, peer, &self.trusted_proxies)
    }
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by
/// its /64.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match unmapped(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The client's address. From a trusted proxy: walking `X-Forwarded-For` from the right (each
/// proxy appends the address it was reached from), the first hop that is not itself a trusted
/// proxy, or the leftmost when all are. From anyone else, or when the header is missing or
/// malformed: the peer address. Entries left of the first untrusted hop are the client's own
/// words and never believed.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let is_trusted = |ip: &IpAddr| {
        let ip = unmapped(*ip);
        trusted.iter().any(|net| net.contains(&ip))
    };
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let hops: Option<Vec<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<&str>>>()
        .map(|values| values.into_iter().flat_map(|v| v.split(',')))
        .and_then(|hops| hops.map(|hop| hop.trim().parse::<IpAddr>().ok()).collect());
    let Some(hops) = hops.filter(|h| !h.is_empty()) else {
        return peer_ip;
    };
    hops.iter()
        .rev()
        .find(|hop| !is_trusted(hop))
        .or_else(|| hops.first())
        .copied()
        .unwrap_or(peer_ip)
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener's peers) as the IPv4 it is, so
/// IPv4 CIDRs and budgets apply to it.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

pub async fn limit_api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = state.limits.client_ip(req.headers(), peer(&req));
    match RateLimits::check(state.limits.api.as_ref(), client) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub async fn limit_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = state.limits.client_ip(req.headers(), peer(&req));
    match RateLimits::check(state.limits.auth.as_ref(), client) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "10.9.0.1:5000".parse().unwrap();
        let trusted = nets(&["10.0.0.0/24"]);
        let h = forwarded("203.0.113.9, 198.51.100.7");
        assert_eq!(
            client_ip(&h, Some(proxy), &[]),
            proxy.ip(),
            "nothing trusted"
        );
        assert_eq!(client_ip(&h, Some(stranger), &trusted), stranger.ip());
        assert_eq!(client_ip(&h, Some(proxy), &trusted), ip("198.51.100.7"));
        // A chain of trusted proxies: the nearest untrusted hop, not what the client wrote.
        let chain = forwarded("1.2.3.4, 198.51.100.7, 10.0.0.5");
        assert_eq!(client_ip(&chain, Some(proxy), &trusted), ip("198.51.100.7"));
        let all_proxies = forwarded("10.0.0.7, 10.0.0.5");
        assert_eq!(
            client_ip(&all_proxies, Some(proxy), &trusted),
            ip("10.0.0.7")
        );
        // Malformed or missing: the peer, never a guess.
        assert_eq!(
            client_ip(&forwarded("garbage"), Some(proxy), &trusted),
            proxy.ip()
        );
        assert_eq!(
            client_ip(&forwarded("198.51.100.7, garbage"), Some(proxy), &trusted),
            proxy.ip()
        );
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(proxy), &trusted),
            proxy.ip()
        );
        // A proxy reaching a dual-stack listener appears IPv4-mapped; IPv4 CIDRs still match.
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        assert_eq!(client_ip(&h, Some(mapped), &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            rate_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            rate_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:3::1")),
            rate_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(rate_key(ip("192.0.2.4")), ip("192.0.2.4"));
        assert_eq!(rate_key(ip("::ffff:192.0.2.4")), ip("192.0.2.4"));
        let limits = RateLimits::new(
            &RateLimitSettings {
                per_second: 1,
                burst: 1,
                auth_per_minute: 1,
                auth_burst: 1,
            },
            Vec::new(),
        );
        assert!(RateLimits::check(limits.auth.as_ref(), ip("2001:db8:1:2::1")).is_ok());
        assert!(
            RateLimits::check(limits.auth.as_ref(), ip("2001:db8:1:2::9999")).is_err(),
            "another address of the same /64 shares the budget"
        );
        assert!(RateLimits::check(limits.auth.as_ref(), ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn over_budget_is_429_with_retry_after_per_client() {
        let limits = RateLimits::new(
            &RateLimitSettings {
                per_second: 1,
                burst: 2,
                auth_per_minute: 1,
                auth_burst: 1,
            },
            Vec::new(),
        );
        let b: IpAddr = "192.0.2.250".parse().unwrap();
        // The API budget refills one request a second, so the third request is refused only when
        // the three come within that second. A machine stalled longer is not judged: the next
        // client address tries again (at most 200 times, so a limiter that never refuses fails).
        let mut judged = 0;
        for last in 1..=200u8 {
            let a = IpAddr::from([192, 0, 2, last]);
            let started = std::time::Instant::now();
            let first = RateLimits::check(limits.api.as_ref(), a);
            let second = RateLimits::check(limits.api.as_ref(), a);
            let third = RateLimits::check(limits.api.as_ref(), a);
            if started.elapsed() >= std::time::Duration::from_millis(900) {
                eprintln!("{a}: not judged, the checks took {:?}", started.elapsed());
                continue;
            }
            assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
            let e = third.unwrap_err();
            assert_eq!(e.retry_after(), Some(1));
            judged += 1;
            break;
        }
        assert_eq!(judged, 1, "every attempt was stalled past the refill");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(RateLimits::check(limits.api.as_ref(), b).is_ok());
        let first_auth = std::time::Instant::now();
        assert!(RateLimits::check(limits.auth.as_ref(), a).is_ok());
        let e = RateLimits::check(limits.auth.as_ref(), a).unwrap_err();
        // The next login is allowed a minute after the first, less what a stall took meanwhile.
        let waited = first_auth.elapsed().as_secs();
        let retry_after = e.retry_after().unwrap();
        assert!(
            (59u64.saturating_sub(waited)..=60).contains(&retry_after),
            "{e:?} after {waited} s"
        );
        limits.housekeeping();
    }

    #[test]
    fn zero_disables() {
        let limits = RateLimits::new(
            &RateLimitSettings {
                per_second: 0,
                burst: 0,
                auth_per_minute: 0,
                auth_burst: 0,
            },
            Vec::new(),
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| RateLimits::check(limits.api.as_ref(), a).is_ok()));
    }
}
