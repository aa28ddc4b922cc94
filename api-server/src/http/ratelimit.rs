//! Per-client rate limits (GCRA via governor): one budget for `/api/*`, a much stricter one for
//! login, register and refresh. Over budget answers 429 with `Retry-After`. Clients are told
//! apart by peer address, or by the last `X-Forwarded-For` hop when the proxy is trusted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::http::state::AppState;

pub struct RateLimits {
    api: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
}

fn nonzero(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, trust_forwarded_for: bool) -> Self {
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
            trust_forwarded_for,
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
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many_requests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        client_ip(headers, peer, self.trust_forwarded_for)
    }
}

/// The client's address: the rightmost `X-Forwarded-For` entry (the one our own proxy appended)
/// when trusted and parseable, else the peer address.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return ip;
    }
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())
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

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(&headers, Some(peer), false), peer.ip());
        assert_eq!(
            client_ip(&headers, Some(peer), true),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(&headers, Some(peer), true), peer.ip());
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
            false,
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
            false,
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| RateLimits::check(limits.api.as_ref(), a).is_ok()));
    }
}
