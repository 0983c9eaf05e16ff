//! HTTPS on the listener (rustls, the TLS stack the project already
//! carries), with the certificate and key reloaded on SIGHUP (new
//! handshakes get the new pair; open connections go on), and client
//! certificates verified against `STOWAGE_TLS_CLIENT_CA`. A verified client
//! certificate named in `STOWAGE_MTLS_SERVICES` is a service identity.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use stowage_actors::accounts::Scopes;

/// Whether a client certificate is asked for or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientAuth {
    #[default]
    Optional,
    Required,
}

/// The PEM files the listener serves with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds no PEM certificate", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .context("the private key is not one rustls can sign with")?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("the private key does not belong to the certificate")?;
    Ok(certified)
}

impl Reloadable {
    /// Reads the pair again; on any error the one in use stays.
    pub fn reload(&self, files: &TlsFiles) -> anyhow::Result<()> {
        let fresh = certified_key(&files.cert, &files.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

/// The rustls configuration of the listener, and its reloadable certificate.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<(ServerConfig, Arc<Reloadable>)> {
    let resolver = Arc::new(Reloadable {
        current: RwLock::new(Arc::new(certified_key(&files.cert, &files.key)?)),
    });
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading the client CA {}", ca.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("{} is not PEM", ca.display()))?)
                    .with_context(|| format!("{} is not a CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match files.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            }
            .build()
            .context("the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_cert_resolver(resolver.clone());
    Ok((config, resolver))
}

/// Reloads the certificate and key whenever the process gets SIGHUP.
pub fn reload_on_sighup(resolver: Arc<Reloadable>, files: TlsFiles) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            match resolver.reload(&files) {
                Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "TLS certificate not reloaded; the previous one stays")
                }
            }
        }
    });
    Ok(())
}

/// A verified client certificate's names: its subject's common name and
/// its DNS subject alternative names.
#[derive(Debug, Clone, Default)]
pub struct PeerNames(pub Vec<String>);

/// `HttpServer::on_connect`: a connection with a verified client
/// certificate carries its names (the verifier let through only verified
/// ones).
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
    else {
        return;
    };
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return;
    };
    ext.insert(PeerNames(names(leaf.as_ref())));
}

fn names(der: &[u8]) -> Vec<String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid_cn() {
                if let Ok(s) = atv
                    .value
                    .decode_as::<x509_cert::der::asn1::Utf8StringRef<'_>>()
                {
                    names.push(s.as_str().to_owned());
                } else if let Ok(s) = atv
                    .value
                    .decode_as::<x509_cert::der::asn1::PrintableStringRef<'_>>()
                {
                    names.push(s.as_str().to_owned());
                }
            }
        }
    }
    if let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() {
        for name in san.0 {
            if let GeneralName::DnsName(dns) = name {
                names.push(dns.as_str().to_owned());
            }
        }
    }
    names
}

fn const_oid_cn() -> x509_cert::der::oid::ObjectIdentifier {
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.4.3")
}

/// `STOWAGE_MTLS_SERVICES`: `name=scope+scope,…`.
#[derive(Debug, Clone, Default)]
pub struct Services(pub HashMap<String, Scopes>);

impl Services {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, scopes) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not name=scope+scope"))?;
            let scopes = Scopes::from_names(scopes.split('+').map(str::trim)).map_err(|bad| {
                format!("`{bad}` is not a scope (files:read, files:write, admin)")
            })?;
            if name.trim().is_empty() || scopes.is_empty() {
                return Err(format!("`{entry}` needs a name and at least one scope"));
            }
            map.insert(name.trim().to_owned(), scopes);
        }
        Ok(Self(map))
    }

    /// The service a verified certificate's names make, if any.
    pub fn of(&self, peer: &PeerNames) -> Option<(String, Scopes)> {
        peer.0
            .iter()
            .find_map(|n| self.0.get(n).map(|s| (n.clone(), *s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_parse() {
        let s = Services::parse("billing=admin, backup=files:read+files:write").unwrap();
        assert!(s.0["billing"].admin());
        assert!(!s.0["backup"].admin());
        assert!(Services::parse("billing").is_err());
        assert!(Services::parse("billing=root").is_err());
        assert!(Services::parse("=admin").is_err());
        let peer = PeerNames(vec!["x".into(), "backup".into()]);
        assert_eq!(s.of(&peer).map(|(n, _)| n), Some("backup".to_owned()));
    }
}
