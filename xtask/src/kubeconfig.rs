//! Kubeconfig files with embedded client certificates.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Everything one kubeconfig needs: where the API server is, how to trust it, who we are.
pub struct Kubeconfig<'a> {
    pub cluster_name: &'a str,
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub user: &'a str,
    pub client_cert_pem: &'a str,
    pub client_key_pem: &'a str,
}

impl Kubeconfig<'_> {
    /// YAML text; every value is either base64 or a fixed-alphabet name, so no quoting is needed.
    pub fn render(&self) -> String {
        let b64 = |s: &str| STANDARD.encode(s.as_bytes());
        let context = format!("{}@{}", self.user, self.cluster_name);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {context}\n  context:\n    cluster: {cluster}\n    user: {user}\ncurrent-context: {context}\n",
            cluster = self.cluster_name,
            server = self.server,
            ca = b64(self.ca_pem),
            user = self.user,
            cert = b64(self.client_cert_pem),
            key = b64(self.client_key_pem),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_single_context_kubeconfig() {
        let text = Kubeconfig {
            cluster_name: "fp-local",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            user: "fp-admin",
            client_cert_pem: "CERT",
            client_key_pem: "KEY",
        }
        .render();
        assert!(text.contains("    server: https://127.0.0.1:6443\n"));
        assert!(text.contains("certificate-authority-data: Q0E=\n"));
        assert!(text.contains("client-certificate-data: Q0VSVA==\n"));
        assert!(text.contains("client-key-data: S0VZ\n"));
        assert!(text.contains("current-context: fp-admin@fp-local\n"));
        assert!(text.contains("    cluster: fp-local\n    user: fp-admin\n"));
    }
}
