//! The operator–API server contract, checked across the two crates: what the operator renders
//! for the API server is what the API server's own loader accepts, with the meaning intended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fp_api_server::config::FileConfig;
use fp_operator::crd::FootballPrediction;
use fp_operator::resources::config_map::{
    DRAIN_DELAY_SECONDS, SHUTDOWN_TIMEOUT_SECONDS, config_toml,
};
use fp_operator::validate::{Settings, Validated, validate};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every documented sample manifest, validated as the operator would.
fn samples() -> Vec<(String, Validated)> {
    let dir = workspace().join("docs/samples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            if value["kind"] != "FootballPrediction" {
                continue;
            }
            let mut fp: FootballPrediction = serde_json::from_value(value).unwrap();
            fp.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
            fp.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            let validated = validate(&fp, &Settings::default())
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            out.push((path.display().to_string(), validated));
        }
    }
    assert!(
        out.len() >= 2,
        "samples in {}: {}",
        dir.display(),
        out.len()
    );
    out
}

fn parse(text: &str) -> Result<FileConfig, String> {
    FileConfig::parse(Path::new("config.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn the_rendered_config_loads_in_the_api_server_with_the_spec_values() {
    for (sample, v) in samples() {
        let text = config_toml(&v);
        let config = parse(&text).unwrap_or_else(|e| panic!("{sample}: {e}\n{text}"));
        let ttl = |d: Option<fp_api_server::config::HumanDuration>| d.map(|d| d.0);
        assert_eq!(
            ttl(config.access_token_ttl),
            Some(humantime::parse_duration(&v.spec.auth.access_token_ttl).unwrap()),
            "{sample}"
        );
        assert_eq!(
            ttl(config.refresh_token_ttl),
            Some(humantime::parse_duration(&v.spec.auth.refresh_token_ttl).unwrap()),
            "{sample}"
        );
        // The API server must not seed the demo league into a production database.
        assert!(
            matches!(config.demo_data, Some(fp_api_server::config::DemoData::Off)),
            "{sample}: {:?}",
            config.demo_data
        );
        assert_eq!(config.hsts, v.spec.tls.as_ref().map(|_| true), "{sample}");
        assert_eq!(
            config.jwt_audience.as_deref(),
            Some(format!("{}/{}", v.namespace, v.name).as_str()),
            "{sample}"
        );
        assert_eq!(
            config.allow_registration.unwrap_or(true),
            v.spec.auth.allow_registration,
            "{sample}"
        );
        // The proxies the spec trusts are the ones the API server believes, as it parses them.
        let settings = fp_api_server::config::resolve_serve(&config, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{sample}: {e}"));
        let believed: Vec<String> = settings
            .http
            .trusted_proxies
            .iter()
            .map(|net| net.to_string())
            .collect();
        let trusted = v.spec.ingress.as_ref().map(|i| i.trusted_proxies.clone());
        assert_eq!(believed, trusted.unwrap_or_default(), "{sample}");
        assert_eq!(
            config.trust_forwarded_for, None,
            "{sample}: every peer trusted"
        );
        // The pods' termination grace period is computed from these two: the API server must
        // read them as the operator means them.
        let seconds = |s: i64| Some(Duration::from_secs(u64::try_from(s).unwrap()));
        assert_eq!(
            ttl(config.drain_delay),
            seconds(DRAIN_DELAY_SECONDS),
            "{sample}"
        );
        assert_eq!(
            ttl(config.shutdown_timeout),
            seconds(SHUTDOWN_TIMEOUT_SECONDS),
            "{sample}"
        );
    }
}

#[test]
fn the_loader_refuses_a_key_it_does_not_know() {
    // What makes the test above mean something: a key the operator invents fails to load.
    let (_, v) = samples().remove(0);
    let text = config_toml(&v) + "invented_by_the_operator = true\n";
    let error = parse(&text).unwrap_err();
    assert!(error.contains("invented_by_the_operator"), "{error}");
}
