//! The simulator as an HTTP server on actix-web: its routes, [`start`] (bind, spawn, return a
//! [`RunningSim`] with the addresses, the server handle and the in-process [`Sim`]), and
//! [`run`] for `overseer sim` (start, then serve until Ctrl-C or SIGTERM).
//!
//! Routes: `POST /token`; the Google Ads methods under `/{version}/customers/{customer_id}/`
//! (a version outside `api_versions` is a 404, as at Google; see `call.rs`); the `/sim` control
//! routes; anything else is a Google-shaped 404.

use std::{io, net::SocketAddr};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};

use super::{
    ad_group_ad_labels::AdGroupAdLabels, ad_group_ads::AdGroupAds, admin, args::SimArgs, auth,
    call::handle, config::SimConfig, error::SimError, labels::Labels, search::Search, state::Sim,
};

/// Largest request body: a full 10,000-operation mutate is a few MB.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A hung request must not hold up shutdown for long.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// Registers the simulator's routes on an app.
pub fn routes(sim: Sim) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let customer = |method: &str| format!("/{{version}}/customers/{{customer_id}}/{method}");
        cfg.app_data(web::Data::new(sim))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/token", web::post().to(auth::token))
            .configure(admin::routes)
            .route(
                &customer("googleAds:search"),
                web::post().to(handle::<Search>),
            )
            .route(&customer("labels:mutate"), web::post().to(handle::<Labels>))
            .route(
                &customer("adGroupAds:mutate"),
                web::post().to(handle::<AdGroupAds>),
            )
            .route(
                &customer("adGroupAdLabels:mutate"),
                web::post().to(handle::<AdGroupAdLabels>),
            )
            .default_service(web::to(unknown_route));
    }
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    SimError::not_found(req.path()).into_response("v26", "")
}

/// A running simulator.
pub struct RunningSim {
    pub addrs: Vec<SocketAddr>,
    pub handle: ServerHandle,
    /// In-process access to stats, config and data.
    pub sim: Sim,
    /// Ends when the server stops.
    pub done: actix_rt::task::JoinHandle<io::Result<()>>,
}

impl RunningSim {
    /// `http://{first address}`: the API endpoint to configure a client with.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// The OAuth token URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }
}

/// Generates the data and starts serving on `addr` (port 0 picks a free one).
pub fn start(config: SimConfig, addr: &str) -> io::Result<RunningSim> {
    let sim = Sim::new(config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let app_sim = sim.clone();
    let server = HttpServer::new(move || App::new().configure(routes(app_sim.clone())))
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .bind(addr)?;
    let addrs = server.addrs();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{addr} bound no address"),
        ));
    }
    let server = server.run();
    let handle = server.handle();
    Ok(RunningSim {
        addrs,
        handle,
        sim,
        done: actix_rt::spawn(server),
    })
}

/// `overseer sim`: starts the simulator and serves until `stop` (the caller's signal) ends.
pub async fn run(args: SimArgs, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let config = args.config();
    let running = start(config.clone(), &args.addr())?;
    let url = running.base_url();
    tracing::info!(%url, customers = config.customers, "Google Ads simulator listening");
    println!(
        "Google Ads simulator on {url}: {} customers × {} ad groups; token URL {url}/token, \
         stats {url}/sim/stats",
        config.customers, config.ad_groups_per_customer
    );
    stop.await;
    tracing::info!("simulator shutting down");
    running.handle.stop(true).await;
    Ok(())
}
