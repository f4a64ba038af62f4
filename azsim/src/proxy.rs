//! A local HTTPS proxy (HTTP `CONNECT`, as clients use one through `HTTPS_PROXY`) that gives
//! the simulator Azure's host names: `management.azure.com` and `login.microsoftonline.com`
//! reach the ARM + Entra listener, `<vault>.vault.azure.net` the listener of the vault of that
//! name. The listeners' certificate carries those names, so a client that trusts the
//! simulator's CA talks to "Azure" by its real URLs — Microsoft's CLI, which builds a vault's
//! URL from its name and the cloud's DNS suffix, and every Key Vault SDK with its
//! challenge-resource check on.
//!
//! Only `CONNECT` to those names on port 443 is served; anything else is refused with 403 (the
//! proxy never reaches beyond loopback).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::sim::Shared;

/// The public host names the proxy (and the listeners' certificate) serve.
pub(crate) const ARM_HOST: &str = "management.azure.com";
/// Entra's host.
pub(crate) const LOGIN_HOST: &str = "login.microsoftonline.com";
/// Key Vault's DNS suffix (after the vault's name).
pub(crate) const VAULT_SUFFIX: &str = ".vault.azure.net";

/// The most a `CONNECT` request head may be.
const MAX_HEAD: usize = 8 * 1024;

/// The loopback port `host:port` maps to, if any.
fn target_port(shared: &Shared, authority: &str, arm_port: u16) -> Option<u16> {
    let (host, port) = authority.rsplit_once(':')?;
    if port != "443" {
        return None;
    }
    let host = host.to_ascii_lowercase();
    if host == ARM_HOST || host == LOGIN_HOST {
        return Some(arm_port);
    }
    let vault_name = host.strip_suffix(VAULT_SUFFIX).filter(|name| !name.is_empty() && !name.contains('.'))?;
    let state = shared.lock();
    state.vaults.values().find(|vault| vault.name.eq_ignore_ascii_case(vault_name)).map(|vault| vault.port)
}

/// Reads the request head (up to the blank line); `None` if the client sent too much or closed.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

async fn tunnel(shared: Arc<Shared>, mut client: TcpStream, arm_port: u16) {
    let Some(head) = read_head(&mut client).await else { return };
    let mut words = head.split_whitespace();
    let (method, authority) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let port = if method.eq_ignore_ascii_case("CONNECT") { target_port(&shared, authority, arm_port) } else { None };
    let Some(port) = port else {
        tracing::debug!(%method, %authority, "azsim proxy refused a request");
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Serves the proxy on `listener` until the task is aborted (which drops every open tunnel).
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, arm_port: u16) {
    let mut tunnels = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = tunnels.join_next(), if !tunnels.is_empty() => continue,
        };
        match accepted {
            Ok((stream, _)) => {
                tunnels.spawn(tunnel(shared.clone(), stream, arm_port));
            }
            Err(error) => tracing::warn!(%error, "azsim proxy: accepting a connection failed"),
        }
    }
}
