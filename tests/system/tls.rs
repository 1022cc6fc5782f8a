//! deploy/nginx/tls.conf in front of a production instance, on loopback with a throwaway
//! certificate: HTTPS pages carry Strict-Transport-Security and `__Host-` cookies, and plain
//! HTTP only redirects to HTTPS.

use std::process::Stdio;

use shop_lab::cluster::{find_nginx, signal_group, write_nginx_main};
use shop_lab::free_ports;

use crate::helpers::spawn_app_with;

/// Stops nginx's process group however the test ends.
struct Nginx(u32);

impl Drop for Nginx {
    fn drop(&mut self) {
        signal_group(self.0, "KILL");
    }
}

#[tokio::test]
async fn tls_termination_at_nginx_gives_hsts_and_host_only_cookies() {
    let app = spawn_app_with(|s| {
        s.insert("APP_ENV".into(), "production".into());
    })
    .await;
    let shop_port = app.address.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.path().join("shop.key"))
        .arg("-out")
        .arg(dir.path().join("shop.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success(), "a self-signed certificate");
    let [https_port, http_port] = free_ports().unwrap();
    let site: String = include_str!("../../deploy/nginx/tls.conf")
        .lines()
        .filter(|line| !line.contains("server shop2") && !line.contains("server shop3"))
        .map(|line| {
            line.replace(
                "server shop1:8080",
                &format!("server 127.0.0.1:{shop_port}"),
            )
            .replace("/etc/nginx/tls/", &format!("{}/", dir.path().display()))
            .replace(
                "listen 443 ssl;",
                &format!("listen 127.0.0.1:{https_port} ssl;"),
            )
            .replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
                + "\n"
        })
        .collect();
    assert!(site.contains(&format!("127.0.0.1:{https_port} ssl")));
    std::fs::write(dir.path().join("tls.conf"), site).unwrap();
    write_nginx_main(dir.path(), "tls.conf").unwrap();
    let nginx = tokio::process::Command::new(find_nginx().unwrap())
        .arg("-p")
        .arg(dir.path())
        .args(["-c", "nginx.conf", "-g", "daemon off;"])
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts");
    let _group = Nginx(nginx.id().unwrap());

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let https = format!("https://127.0.0.1:{https_port}");
    let mut page = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{https}/")).send().await {
            page = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = page.expect("nginx answers over HTTPS");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("__Host-shop_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    // Plain HTTP: a redirect to HTTPS, nothing else, no cookie.
    let plain = client
        .get(format!("http://127.0.0.1:{http_port}/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::MOVED_PERMANENTLY);
    let location = plain.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://") && location.ends_with("/products/1"),
        "{location}"
    );
    assert!(!plain.headers().contains_key("set-cookie"));
}
