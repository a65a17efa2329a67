//! A throwaway CA and a server certificate for 127.0.0.1 / localhost, made with
//! rcgen, for the directory servers the rotator tests run.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl TestPki {
    /// A CA named `breakglass test CA` and a server certificate it signed, for
    /// `extra_names` besides 127.0.0.1 and localhost.
    pub fn with_names(extra_names: &[&str]) -> TestPki {
        Self::make("breakglass test CA", extra_names)
    }

    /// Another CA, with another name, as a client misconfigured with the wrong
    /// CA file would trust.
    pub fn other() -> TestPki {
        Self::make("some other CA", &[])
    }

    fn make(ca_name: &str, extra_names: &[&str]) -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        names.extend(extra_names.iter().map(|n| n.to_string()));
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(names).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: leaf.pem(),
            server_key_pem: leaf_key.serialize_pem(),
        }
    }

    pub fn new() -> TestPki {
        Self::with_names(&[])
    }
}
