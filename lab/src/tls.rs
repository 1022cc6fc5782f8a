//! A certificate authority made on the spot and a certificate it signed for `127.0.0.1` and
//! `localhost`, with `openssl`: for a store that speaks only TLS on loopback (the benchmark's
//! `redis-tls`, the tests' TLS Redis), reached as a managed one is, with the CA configured.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Writes `ca.crt` and `ca.key`, and `{name}.crt` and `{name}.key` signed by that CA, into
/// `dir`; each valid for a day.
pub fn throwaway_ca_and_certificate(dir: &Path, name: &str) -> anyhow::Result<()> {
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("could not run openssl")?;
        if !status.success() {
            bail!("openssl {args:?} failed");
        }
        Ok(())
    };
    let (key, days) = (["-newkey", "rsa:2048", "-nodes"], ["-days", "1"]);
    let (crt, csr, private) = (
        format!("{name}.crt"),
        format!("{name}.csr"),
        format!("{name}.key"),
    );
    openssl(
        &[
            &["req", "-x509"][..],
            &key,
            &days,
            &[
                "-subj",
                "/CN=throwaway CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req"][..],
            &key,
            &["-subj", "/CN=localhost", "-keyout", &private, "-out", &csr],
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        &[
            &[
                "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
            ][..],
            &["-CAcreateserial", "-extfile", "san.cnf", "-out", &crt],
            &days,
        ]
        .concat(),
    )
}

/// The arguments of a `redis-server` that speaks only TLS on `port` of loopback, with the
/// certificate [`throwaway_ca_and_certificate`] wrote as `redis` into `dir`, no client
/// certificates asked, and nothing kept on disk.
pub fn redis_server_args(dir: &Path, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--tls-port",
    ]
    .map(OsString::from)
    .into();
    args.push(port.to_string().into());
    for (flag, file) in [
        ("--tls-auth-clients", None),
        ("--tls-cert-file", Some("redis.crt")),
        ("--tls-key-file", Some("redis.key")),
        ("--tls-ca-cert-file", Some("ca.crt")),
    ] {
        args.push(flag.into());
        args.push(file.map_or_else(|| "no".into(), |name| dir.join(name).into_os_string()));
    }
    args
}
