//! A test CA and a server certificate (for `localhost`, `127.0.0.1` and one more name), written
//! as PEM files; the key file is readable by its owner only (Samba refuses others).

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where [`issue`] wrote the files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// Issues a CA and a certificate for `name`, `localhost` and `127.0.0.1` into `dir` (`ca.pem`,
/// `cert.pem`, `key.pem`).
pub fn issue(dir: &Path, name: &str) -> Result<TlsFiles, TlsError> {
    let io = |what: &str| {
        let what = format!("{}/{what}", dir.display());
        move |err| TlsError::Io(what.clone(), err)
    };
    std::fs::create_dir_all(dir).map_err(io("create"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "gmsa-fleet test CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut server_params =
        CertificateParams::new(vec![name.to_string(), "localhost".to_string(), "127.0.0.1".to_string()])?;
    server_params.distinguished_name = DistinguishedName::new();
    server_params.distinguished_name.push(DnType::CommonName, name);
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;
    let files = TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.ca, ca_cert.pem()).map_err(io("ca.pem"))?;
    std::fs::write(&files.cert, server_cert.pem()).map_err(io("cert.pem"))?;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&files.key)
        .map_err(io("key.pem"))?;
    key.write_all(server_key.serialize_pem().as_bytes()).map_err(io("key.pem"))?;
    Ok(files)
}
