//! S3 destinations against a real S3-compatible server (s3s-fs) on loopback: multipart upload
//! with read-back verification, listing, download for restore and verify, pruning, and clear,
//! bounded failures for bad credentials, unreachable and silent endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;

use std::time::{Duration, Instant};

use backup_support::*;
use chrono::Utc;
use fp_api_server::backup::create::run_backup;
use fp_api_server::backup::id::{BackupId, BackupSelector};
use fp_api_server::backup::list::{ListRequest, run_list};
use fp_api_server::backup::outcome::Failure;
use fp_api_server::backup::postgres::PgTarget;
use fp_api_server::backup::progress::Progress;
use fp_api_server::backup::prune::prune;
use fp_api_server::backup::restore::{RestoreRequest, run_restore};
use fp_api_server::backup::retention::{DEFAULT_INCOMPLETE_GRACE, RetentionPolicy};
use fp_api_server::backup::store::{BackupStore, MIN_PART_SIZE, S3Credentials, S3Settings};
use fp_api_server::backup::verify::{VerifyRequest, run_verify};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_download_verify_and_prune_on_s3() {
    let Some(server) = pg_server() else { return };
    let Some(bin) = s3_server_bin() else { return };
    let s3 = S3Server::start(&bin);
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_s3").await;
    load_fixture(&db, 2_000).await;
    load_bulk(&db, 12).await;
    let before = fingerprint(&db.url).await;
    let local = tempfile::tempdir().unwrap();
    let settings = S3Settings {
        part_size: MIN_PART_SIZE,
        ..s3.settings()
    };

    // One dump, two destinations: the volume and the off-site bucket.
    let summary = run_backup(
        &request(
            &db.url,
            vec![file_destination(local.path()), s3.destination("prod/daily")],
            settings.clone(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    assert!(summary.ok, "{}", serde_json::to_string(&summary).unwrap());
    let id = summary.id.unwrap();
    let size = summary.size_bytes.unwrap();
    assert!(
        size > 2 * MIN_PART_SIZE as u64,
        "dump of {size} bytes needs several parts"
    );
    assert!(
        summary
            .destinations
            .iter()
            .all(|d| d.ok && d.verify_seconds.is_some())
    );
    assert_eq!(summary.destinations[1].count, Some(1));

    // The server really stored it: the object on its disk hashes to the manifest's sha256.
    let stored = std::fs::read(
        s3.root
            .path()
            .join(S3_BUCKET)
            .join(format!("prod/daily/{id}/database.dump")),
    )
    .unwrap();
    assert_eq!(stored.len() as u64, size);
    assert_eq!(
        hex::encode(Sha256::digest(&stored)),
        summary.sha256.clone().unwrap()
    );

    // Listing with checksums recomputed from a download.
    let listed = run_list(
        &ListRequest {
            destination: s3.destination("prod/daily"),
            s3: settings.clone(),
            verify_checksums: true,
        },
        &progress,
    )
    .await;
    assert!(listed.ok, "{:?}", listed.error);
    assert_eq!(
        (listed.count, listed.bytes, listed.latest),
        (1, size, Some(id))
    );
    assert_eq!(listed.backups[0].checksum, "verified");

    // Restore from the bucket into a new database: identical content.
    let (name, url) = db.sibling("fp_bk_s3_restored");
    let restored = run_restore(
        &RestoreRequest {
            destination: s3.destination("prod/daily"),
            s3: settings.clone(),
            selector: BackupSelector::Latest,
            target: PgTarget::parse(&url).unwrap(),
            force: false,
            create: true,
            tools: tools(),
            connect_timeout: CONNECT_TIMEOUT,
            work_dir: None,
        },
        &progress,
    )
    .await;
    assert!(restored.ok, "{}", serde_json::to_string(&restored).unwrap());
    assert_eq!(fingerprint(&url).await, before);
    drop_database(&server, &name).await;

    // The restore drill from the bucket.
    let verified = run_verify(
        &VerifyRequest {
            destination: s3.destination("prod/daily"),
            s3: settings.clone(),
            selector: BackupSelector::Id(id),
            server: PgTarget::parse(&server).unwrap(),
            tools: tools(),
            connect_timeout: CONNECT_TIMEOUT,
            work_dir: None,
        },
        &progress,
    )
    .await;
    assert!(verified.ok, "{}", serde_json::to_string(&verified).unwrap());

    // Pruning on the bucket: forged older backups, keepLast 2 keeps the two newest.
    let store = BackupStore::open(&s3.destination("prod/daily"), &settings).unwrap();
    let old: Vec<BackupId> = (1..=4)
        .map(|days| BackupId::from_time(Utc::now() - chrono::Duration::days(days)))
        .collect();
    for forged in &old {
        forge(&store, *forged).await;
    }
    let policy = RetentionPolicy::new(Some(2), None, DEFAULT_INCOMPLETE_GRACE).unwrap();
    let report = prune(&store, &policy, Utc::now(), &progress).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let removed: Vec<BackupId> = report.removed.iter().map(|r| r.id).collect();
    assert_eq!(removed, vec![old[3], old[2], old[1]]);
    let left: Vec<BackupId> = store
        .catalog()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![old[0], id]);
    assert!(
        !s3.root
            .path()
            .join(S3_BUCKET)
            .join(format!("prod/daily/{}/manifest.json", old[3]))
            .exists()
    );
    db.drop_now().await;
}

fn with_secret(settings: &S3Settings, access: &str, secret: &str) -> S3Settings {
    S3Settings {
        credentials: Some(S3Credentials {
            access_key_id: access.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: None,
        }),
        ..settings.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_fail_fast_and_clearly_while_the_local_copy_succeeds() {
    let Some(server) = pg_server() else { return };
    let Some(bin) = s3_server_bin() else { return };
    let s3 = S3Server::start(&bin);
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_s3_creds").await;
    load_fixture(&db, 100).await;
    let local = tempfile::tempdir().unwrap();

    for (access, secret) in [
        (S3_ACCESS_KEY, "wrong-secret-value-42"),
        ("nobody", S3_SECRET_KEY),
    ] {
        let started = Instant::now();
        let summary = run_backup(
            &request(
                &db.url,
                vec![file_destination(local.path()), s3.destination("prod")],
                with_secret(&s3.settings(), access, secret),
                no_retention(),
            ),
            &progress,
        )
        .await;
        // "Fast" is not a clock judgement here (a busy machine is slow; speed belongs to a
        // benchmark): the run must end, within a generous limit, and say why.
        let took = started.elapsed();
        eprintln!("rejected credentials ({access}): backup ended after {took:?}");
        assert!(took < Duration::from_secs(300), "took {took:?}");
        assert_eq!(
            summary.reason,
            Some(Failure::StorageAccessDenied),
            "{:?}",
            summary.error
        );
        assert_eq!(Failure::StorageAccessDenied.exit_code(), 4);
        let s3_result = &summary.destinations[1];
        assert!(!s3_result.ok);
        let message = s3_result.error.clone().unwrap();
        assert!(message.contains("rejected the credentials"), "{message}");
        assert!(message.contains("s3://fp-backups/prod"), "{message}");
        let json = serde_json::to_string(&summary).unwrap();
        assert!(
            !json.contains("wrong-secret-value-42") && !json.contains(S3_SECRET_KEY),
            "{json}"
        );
        // The volume copy is complete nonetheless.
        assert!(summary.destinations[0].ok, "{json}");
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_endpoints_fail_within_their_timeouts() {
    let base = S3Settings {
        credentials: Some(S3Credentials {
            access_key_id: "a".to_owned(),
            secret_access_key: "b".to_owned(),
            session_token: None,
        }),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        retry_timeout: Duration::from_secs(3),
        ..S3Settings::default()
    };
    // Nothing listens on this port.
    let closed = S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{}", free_port())),
        ..base.clone()
    };
    // This one accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = S3Settings {
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        ..base
    };
    // It keeps listening until the test is done with it (not for a fixed time a busy machine
    // could outlast).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listening = done.clone();
    let accepted = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        while !listening.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        held.len()
    });
    for settings in [closed, silent] {
        let destination =
            fp_api_server::backup::destination::Destination::parse("s3://fp-backups/prod").unwrap();
        let store = BackupStore::open(&destination, &settings).unwrap();
        let started = Instant::now();
        let err = store.check_access().await.unwrap_err();
        let took = started.elapsed();
        eprintln!("{err} after {took:?}");
        // What is judged is that the configured timeouts apply: without them the silent
        // endpoint would hold the first attempt for the default read timeout (60 s). The
        // configured ones end it in a few seconds; the bound leaves a busy machine ten times
        // that, and stays below the default it tells apart.
        assert!(
            took < S3Settings::default().read_timeout - Duration::from_secs(5),
            "{err} after {took:?}"
        );
        let failure = fp_api_server::backup::outcome::CommandError::from(err).failure;
        assert_eq!(failure, Failure::StorageFailed);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        accepted.join().unwrap() > 0,
        "the silent server saw the client"
    );
}
