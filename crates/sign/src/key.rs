//! ECDSA P-256 key pairs in PEM, as cosign and containers/image read them.
//!
//! `NAME.key` holds the private key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`), or
//! encrypted with a passphrase (`-----BEGIN ENCRYPTED PRIVATE KEY-----`: PBES2 with
//! scrypt and AES-256-CBC), created with mode 0600. `NAME.pub` holds the public key as
//! SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), the form `cosign verify --key`,
//! `skopeo` and `podman` (`sigstoreSigned` policies, `keyPath`) take.

use std::io::Write;
use std::path::{Path, PathBuf};

use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};

use crate::error::{Error, Result};

/// The paths `generate` writes for `name`: (`NAME.key`, `NAME.pub`).
pub fn key_paths(name: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = name.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".key"), with(".pub"))
}

/// Generate a new key pair and write `NAME.key` (mode 0600; encrypted when `passphrase`
/// is given and not empty) and `NAME.pub`. Refuses to overwrite either file.
pub fn generate(name: &Path, passphrase: Option<&[u8]>) -> Result<(PathBuf, PathBuf)> {
    let (priv_path, pub_path) = key_paths(name);
    for p in [&priv_path, &pub_path] {
        if p.exists() {
            return Err(Error::key(
                p,
                "already exists; remove it or choose another NAME",
            ));
        }
    }
    let sk = SigningKey::random(&mut rand_core::OsRng);
    let private_pem = match passphrase.filter(|p| !p.is_empty()) {
        Some(pw) => sk
            .to_pkcs8_encrypted_pem(&mut rand_core::OsRng, pw, LineEnding::LF)
            .map_err(|e| Error::key(&priv_path, format!("encrypting the key: {e}")))?,
        None => sk
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::key(&priv_path, format!("encoding the key: {e}")))?,
    };
    let public_pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::key(&pub_path, format!("encoding the public key: {e}")))?;
    write_new(&priv_path, private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pub_path, public_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&priv_path);
        return Err(e);
    }
    Ok((priv_path, pub_path))
}

/// Create `path` (never overwriting) with `mode` from the start, write and sync it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Whether the private key file at `path` is passphrase-encrypted.
pub fn is_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Read a private key: PKCS#8 PEM (encrypted: `passphrase` is asked for by calling it),
/// or SEC1 (`EC PRIVATE KEY`). A cosign-encrypted key (`ENCRYPTED SIGSTORE PRIVATE KEY`)
/// is refused with what to do instead.
pub fn load_private(
    path: &Path,
    passphrase: &mut dyn FnMut() -> Result<Vec<u8>>,
) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    private_from_pem(&text, path, passphrase)
}

/// [`load_private`] from PEM text; `path` names it in errors.
pub fn private_from_pem(
    text: &str,
    path: &Path,
    passphrase: &mut dyn FnMut() -> Result<Vec<u8>>,
) -> Result<SigningKey> {
    if text.contains("SIGSTORE PRIVATE KEY") || text.contains("COSIGN PRIVATE KEY") {
        return Err(Error::key(
            path,
            "a cosign-encrypted key (its own format); use a PKCS#8 key \
             (`hoist key generate`, or `openssl pkcs8 -topk8` of an EC P-256 key)",
        ));
    }
    if is_encrypted(text) {
        let pw = passphrase()?;
        return SigningKey::from_pkcs8_encrypted_pem(text, pw).map_err(|_| {
            Error::key(
                path,
                "cannot decrypt the key: wrong passphrase or not a P-256 key",
            )
        });
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(text)
            .map_err(|e| Error::key(path, format!("not an ECDSA P-256 PKCS#8 key: {e}")));
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        let sk = p256::SecretKey::from_sec1_pem(text)
            .map_err(|e| Error::key(path, format!("not an ECDSA P-256 key: {e}")))?;
        return Ok(SigningKey::from(sk));
    }
    Err(Error::key(
        path,
        "no PEM private key found (expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)",
    ))
}

/// Read a public key (`PUBLIC KEY` PEM, SubjectPublicKeyInfo of ECDSA P-256).
pub fn load_public(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    public_from_pem(&text, path)
}

/// [`load_public`] from PEM text; `path` names it in errors.
pub fn public_from_pem(text: &str, path: &Path) -> Result<VerifyingKey> {
    if text.contains("PRIVATE KEY") {
        return Err(Error::key(
            path,
            "is a private key; verification takes the public key (NAME.pub)",
        ));
    }
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|e| Error::key(path, format!("not an ECDSA P-256 public key (PEM): {e}")))
}

/// The public key as PEM (what `NAME.pub` holds).
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("a P-256 public key always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_pairs_round_trip_and_the_private_key_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("release");
        let (k, p) = generate(&name, None).unwrap();
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&k).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        let sk = load_private(&k, &mut || panic!("no passphrase needed")).unwrap();
        let vk = load_public(&p).unwrap();
        assert_eq!(sk.verifying_key(), &vk);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let e = generate(&name, None).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        let e = load_public(&k).unwrap_err().to_string();
        assert!(e.contains("public key"), "{e}");
    }

    #[test]
    fn encrypted_keys_need_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let (k, p) = generate(&dir.path().join("enc"), Some(b"s3cret")).unwrap();
        let text = std::fs::read_to_string(&k).unwrap();
        assert!(is_encrypted(&text));
        let sk = load_private(&k, &mut || Ok(b"s3cret".to_vec())).unwrap();
        assert_eq!(sk.verifying_key(), &load_public(&p).unwrap());
        let e = load_private(&k, &mut || Ok(b"wrong".to_vec()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrong passphrase"), "{e}");
    }

    #[test]
    fn garbage_is_refused_clearly() {
        let p = Path::new("k");
        assert!(private_from_pem("hello", p, &mut || Ok(vec![])).is_err());
        assert!(public_from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            p
        )
        .is_err());
        let e = private_from_pem(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----",
            p,
            &mut || Ok(vec![]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cosign"), "{e}");
    }
}
