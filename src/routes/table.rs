//! The route table: every path the shop answers and the methods each takes, written once. The
//! routes are registered from it, and a 405's `Allow` is read from it, so the two cannot drift
//! apart (a test sends every route a wrong method, then each allowed one).

use actix_web::{HttpRequest, web};

use super::{account, auth, cart, catalog, checkout, health, inspector, orders};
use crate::error::ShopError;

/// The `Allow` value of a route's methods: a GET route answers HEAD too.
macro_rules! allow {
    (get) => {
        "GET, HEAD"
    };
    (post) => {
        "POST"
    };
    (get, post) => {
        "GET, HEAD, POST"
    };
}

/// Writes `$register`, which adds the routes to an app or a scope (`configure`), and `$allowed`,
/// their methods by path.
macro_rules! route_table {
    ($register:ident, $allowed:ident: $($path:literal => [$($method:ident: $handler:path),+]),+ $(,)?) => {
        pub fn $register(config: &mut web::ServiceConfig) {
            config$(.service(web::resource($path)$(.route(web::$method().to($handler)))+))+;
        }

        fn $allowed(route: &str) -> Option<&'static str> {
            match route {
                $($path => Some(allow!($($method),+)),)+
                _ => None,
            }
        }
    };
}

route_table! {
    pages, page_methods:
    "/" => [get: catalog::index],
    "/products/{id}" => [get: catalog::product],
    "/register" => [get: auth::register_form, post: auth::register],
    "/login" => [get: auth::login_form, post: auth::login],
    "/logout" => [post: auth::logout],
    "/cart" => [get: cart::show],
    "/cart/items" => [post: cart::add],
    "/cart/items/{id}" => [post: cart::update],
    "/cart/items/{id}/remove" => [post: cart::remove],
    "/checkout" => [post: checkout::checkout],
    "/orders" => [get: orders::list],
    "/orders/{id}" => [get: orders::show],
    "/account/sessions" => [get: account::sessions],
    "/account/sessions/end-others" => [post: account::end_others],
    "/account/sessions/{id}/end" => [post: account::end],
    "/session" => [get: inspector::show],
}

route_table! {
    probes, probe_methods:
    "/healthz" => [get: health::healthz],
    "/readyz" => [get: health::readyz],
}

route_table! {
    public_metrics, metrics_methods:
    "/metrics" => [get: health::metrics],
}

/// The methods a route takes, for the `Allow` header of a 405.
pub fn allowed_methods(route: &str) -> Option<&'static str> {
    page_methods(route)
        .or_else(|| probe_methods(route))
        .or_else(|| metrics_methods(route))
}

/// What no route answers: an unknown path is a 404; a known path asked with a method it does
/// not take (actix-web hands those to the default service too) is a 405.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ShopError> {
    match req.match_pattern().as_deref().and_then(allowed_methods) {
        Some(_) => Err(ShopError::MethodNotAllowed),
        None => Err(ShopError::NotFound),
    }
}
