//! (skeleton) HTTP front of one simulated cluster.

use std::sync::{Arc, Mutex};

use crate::store::Store;

pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    _store: Arc<Mutex<Store>>,
    _token: String,
    _cluster: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new()).await;
    })
}
