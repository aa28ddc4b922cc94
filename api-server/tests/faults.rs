//! The test-only fault switch on both backends (only built with the `test-faults` feature, as
//! `cargo xtask test` builds): readiness failing on purpose, and a share of /api requests
//! answering 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, Which};
use fp_api_server::faults::Faults;

on_both_backends!(
    fault_switch_fails_readiness,
    fault_switch_fails_a_share_of_api_requests
);

async fn fault_switch_fails_readiness(which: Which) {
    let faults = Faults::from_lookup(|name| match name {
        "FP_TEST_FAULTS" => Some("enabled".into()),
        "FP_TEST_FAULT_READY_FAIL_AFTER" => Some("0s".into()),
        _ => None,
    })
    .unwrap();
    let app = TestApp::with_faults(which, &[], faults).await;
    let ready = app.get("/health/ready", None).await;
    ready.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["reason"], "fault_injected");
    app.get("/health/live", None).await.expect(StatusCode::OK);
}

async fn fault_switch_fails_a_share_of_api_requests(which: Which) {
    let faults = Faults::from_lookup(|name| match name {
        "FP_TEST_FAULTS" => Some("enabled".into()),
        "FP_TEST_FAULT_ERROR_RATIO" => Some("0.5".into()),
        _ => None,
    })
    .unwrap();
    let app = TestApp::with_faults(which, &[], faults).await;
    let mut failed = 0;
    for _ in 0..20 {
        let r = app.get("/api/v1/leagues", None).await;
        if r.status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(r.json()["code"], "injected_fault");
            failed += 1;
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(failed, 10);
    // Health and metrics are not /api: never failed on purpose.
    for _ in 0..10 {
        app.get("/health/ready", None).await.expect(StatusCode::OK);
    }
}
