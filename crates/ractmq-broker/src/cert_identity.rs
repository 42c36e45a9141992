//! A client's identity from its TLS certificate (`--tls-cert-as-username cn|san`): with mutual TLS the
//! listener has verified the certificate against the client CA, so its Common Name or first Subject Alternative
//! Name becomes the client's user name, and the client is authenticated as that user without a password (as
//! EMQX's `peer_cert_as_username`). ACLs and session ownership then apply to that name.
//!
//! The certificate is parsed with `x509-parser`, a well-kept DER/X.509 parser; nothing here trusts it beyond
//! reading fields, since rustls has already checked its chain.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which field of the client certificate names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdentity {
    /// The subject's Common Name.
    Cn,
    /// The first DNS name, e-mail address or URI of the Subject Alternative Name extension.
    San,
}

impl std::str::FromStr for CertIdentity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cn" => Ok(CertIdentity::Cn),
            "san" => Ok(CertIdentity::San),
            other => Err(format!("'{other}' is not cn or san")),
        }
    }
}

/// The user name `field` of the DER certificate `der` gives; `None` if it has none (or does not parse).
pub(crate) fn user_name(der: &[u8], field: CertIdentity) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let name = match field {
        CertIdentity::Cn => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        CertIdentity::San => cert.subject_alternative_name().ok().flatten().and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(s.to_string()),
                _ => None,
            })
        }),
    };
    // A user name is an MQTT UTF-8 string: no NUL, at most 65,535 bytes.
    name.filter(|n| !n.is_empty() && n.len() <= 65_535 && !n.contains('\0'))
}
