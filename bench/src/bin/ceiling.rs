//! The ceiling for the benchmark: the smallest actix-web server, serving the same cart page
//! bytes as the shop, with no session, no database and no middleware. What the shop reaches on
//! a store is read as a fraction of this.
//!
//! Usage: ceiling PAGE.html PORT [WORKERS]

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(page), Some(port)) = (args.next(), args.next()) else {
        eprintln!("usage: ceiling PAGE.html PORT [WORKERS]");
        std::process::exit(2);
    };
    let body = web::Bytes::from(std::fs::read(&page)?);
    let port: u16 = port.parse().map_err(std::io::Error::other)?;
    let workers: usize = match args.next() {
        Some(n) => n.parse().map_err(std::io::Error::other)?,
        None => 1,
    };
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(body)
            }
        }))
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
