//! The image starts: the shop binary, run as the image's unprivileged user (uid 10001) in a
//! folder laid out like the image's `/app` (root-owned, with `static/` and a `data/` the user
//! owns), creates and uses its SQLite files. No Docker engine is needed for this.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TEST_SECRET, unique_email};

/// The uid and gid `deploy/Dockerfile` gives its `shop` user.
const IMAGE_UID: &str = "10001";

#[tokio::test]
async fn the_embedded_store_image_layout_works_as_an_unprivileged_user() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "this test switches to the image's user, which needs root (as CI runs)"
    );
    let dockerfile = include_str!("../../deploy/Dockerfile");
    assert!(
        dockerfile.contains("--uid 10001")
            && dockerfile.contains("mkdir -p /app/data && chown shop:shop /app/data")
            && dockerfile.contains("WORKDIR /app"),
        "the layout below is the Dockerfile's"
    );
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("app");
    std::fs::create_dir_all(app.join("data")).unwrap();
    copy_dir(
        concat!(env!("CARGO_MANIFEST_DIR"), "/static"),
        &app.join("static"),
    );
    for dir in [root.path(), app.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let owned = std::process::Command::new("chown")
        .args([
            &format!("{IMAGE_UID}:{IMAGE_UID}"),
            app.join("data").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(owned.success());
    // The binary sits outside /app, as the image's /usr/local/bin/shop does.
    let binary = root.path().join("shop");
    std::fs::copy(env!("CARGO_BIN_EXE_shop"), &binary).unwrap();
    let port = shop_lab::free_port().unwrap();
    // The image's environment (deploy/Dockerfile), but on loopback; the defaults put the SQLite
    // files under ./data.
    let mut child = tokio::process::Command::new("setpriv")
        .args([
            &format!("--reuid={IMAGE_UID}"),
            &format!("--regid={IMAGE_UID}"),
            "--clear-groups",
            "--",
            binary.to_str().unwrap(),
        ])
        .env_clear()
        .current_dir(&app)
        .env("APP_ENV", "production")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("STATIC_DIR", app.join("static"))
        .env("SESSION_BACKEND", "sqlite")
        .env("SESSION_SECRET", TEST_SECRET)
        .env("COOKIE_SECURE", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("setpriv runs the shop");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..150 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the shop exited as the image's user: {status}");
        }
        if client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the shop did not become ready within 15 s");
    // A shopper registers and fills a cart: the catalog and the sessions are written to disk.
    let shopper = shop_lab::Shopper::new(&url, &unique_email("image"), None).unwrap();
    assert!(shopper.register(PASSWORD).await.unwrap().0);
    shopper.add(1, 2).await.unwrap();
    assert_eq!(shopper.look().await.unwrap().1, vec![(1, 2)]);
    for file in ["shop.db", "sessions.db"] {
        let meta = std::fs::metadata(app.join("data").join(file))
            .unwrap_or_else(|_| panic!("data/{file} was created"));
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta).to_string(),
            IMAGE_UID,
            "{file} belongs to the image's user"
        );
    }
    child.kill().await.unwrap();
}

fn copy_dir(from: &str, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(entry.path().to_str().unwrap(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
