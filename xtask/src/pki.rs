//! Certificates and keys for the local control plane, generated fresh by every `cluster up`.
//!
//! Two CAs keep etcd apart from the cluster: only the API server's etcd client certificate
//! is accepted by etcd, and no etcd certificate is accepted by the API server.
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that can sign leaf certificates.
pub struct Authority {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Who a client certificate authenticates as: the API server maps CN to the user name and
/// each O to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl ClientIdentity {
    pub fn new(user: &str, groups: &[&str]) -> Self {
        Self {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clock skew; a year is far longer than any local cluster lives.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
}

impl Authority {
    pub fn new(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn sign(&self, mut params: CertificateParams) -> Result<CertKey, PkiError> {
        let key = KeyPair::generate()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A TLS serving certificate for the given host names and IP addresses.
    pub fn server(&self, common_name: &str, sans: &[&str]) -> Result<CertKey, PkiError> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A TLS client certificate for `who`.
    pub fn client(&self, who: &ClientIdentity) -> Result<CertKey, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, who.user.as_str());
        for group in &who.groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group.as_str());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }
}

/// The service-account token signing key pair (ECDSA P-256, ES256 tokens).
pub struct ServiceAccountKeys {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn service_account_keys() -> Result<ServiceAccountKeys, PkiError> {
    let key = KeyPair::generate()?;
    Ok(ServiceAccountKeys {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_pem_blocks(pem: &str, label: &str) -> usize {
        pem.matches(&format!("-----BEGIN {label}-----")).count()
    }

    #[test]
    fn leaf_certificates_are_pem_with_pkcs8_keys() {
        let ca = Authority::new("test-ca").unwrap();
        assert_eq!(count_pem_blocks(&ca.cert_pem, "CERTIFICATE"), 1);
        let server = ca
            .server("kube-apiserver", &["127.0.0.1", "localhost"])
            .unwrap();
        assert_eq!(count_pem_blocks(&server.cert_pem, "CERTIFICATE"), 1);
        assert_eq!(count_pem_blocks(&server.key_pem, "PRIVATE KEY"), 1);
        let client = ca
            .client(&ClientIdentity::new("fp-admin", &["system:masters"]))
            .unwrap();
        assert_ne!(client.cert_pem, server.cert_pem);
        assert_ne!(client.key_pem, server.key_pem);
    }

    #[test]
    fn service_account_keys_are_a_matching_pair() {
        let keys = service_account_keys().unwrap();
        let reparsed = KeyPair::from_pem(&keys.private_pem).unwrap();
        assert_eq!(reparsed.public_key_pem(), keys.public_pem);
    }
}
