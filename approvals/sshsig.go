package approvals

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/ssh"
)

// The SSH signature format (SSHSIG) that `ssh-keygen -Y sign` writes and git uses to sign commits:
// https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig

const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigPEMType = "SSH SIGNATURE"
	// maxArmored bounds an armored signature (an ed25519 one is ~300 bytes; RSA-4096 ~1.5 KiB).
	maxArmored = 8 << 10
)

// sshsig is a parsed SSH signature.
type sshsig struct {
	key       ssh.PublicKey
	namespace string
	hashAlg   string
	sig       *ssh.Signature
}

// parseArmored reads an armored SSH signature ("-----BEGIN SSH SIGNATURE-----").
func parseArmored(armored string) (*sshsig, error) {
	if len(armored) > maxArmored {
		return nil, fmt.Errorf("signature is %d bytes; at most %d", len(armored), maxArmored)
	}
	block, _ := pem.Decode([]byte(armored))
	if block == nil || block.Type != sshsigPEMType {
		return nil, errors.New(`not an SSH signature (want the "-----BEGIN SSH SIGNATURE-----" block that ssh-keygen -Y sign writes)`)
	}
	b := block.Bytes
	if !bytes.HasPrefix(b, []byte(sshsigMagic)) {
		return nil, errors.New("not an SSH signature: bad magic")
	}
	var wire struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		HashAlg   string
		Signature []byte
	}
	if err := ssh.Unmarshal(b[len(sshsigMagic):], &wire); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if wire.Version != sshsigVersion {
		return nil, fmt.Errorf("SSH signature version %d; want %d", wire.Version, sshsigVersion)
	}
	key, err := ssh.ParsePublicKey(wire.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSH signature's public key: %w", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(wire.Signature, sig); err != nil {
		return nil, fmt.Errorf("SSH signature's signature blob: %w", err)
	}
	return &sshsig{key: key, namespace: wire.Namespace, hashAlg: wire.HashAlg, sig: sig}, nil
}

// signedData is what an SSH signature signs: the magic, the namespace and the hash of the message.
func signedData(namespace, hashAlg string, message []byte) ([]byte, error) {
	var h hash.Hash
	switch hashAlg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return nil, fmt.Errorf("SSH signature hash %q not supported (sha256, sha512)", hashAlg)
	}
	h.Write(message)
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{namespace, "", hashAlg, h.Sum(nil)})...), nil
}

// verify checks the signature over message in namespace.
func (s *sshsig) verify(namespace string, message []byte) error {
	if s.namespace != namespace {
		return fmt.Errorf("signed for namespace %q, not %q (sign with ssh-keygen -Y sign -n %s)", s.namespace, namespace, namespace)
	}
	data, err := signedData(s.namespace, s.hashAlg, message)
	if err != nil {
		return err
	}
	if err := s.key.Verify(data, s.sig); err != nil {
		return errors.New("the signature does not match what is approved (forged, or signed over something else)")
	}
	return nil
}

// Sign signs message in namespace with signer, in the armored format of `ssh-keygen -Y sign`. Shepherd
// uses it where it holds the key itself (tests, and `shepherd approve --key` with an unencrypted key).
func Sign(signer ssh.Signer, namespace string, message []byte) (string, error) {
	data, err := signedData(namespace, "sha512", message)
	if err != nil {
		return "", err
	}
	var sig *ssh.Signature
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return "", err
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		HashAlg   string
		Signature []byte
	}{sshsigVersion, signer.PublicKey().Marshal(), namespace, "", "sha512", ssh.Marshal(sig)})...)
	return string(pem.EncodeToMemory(&pem.Block{Type: sshsigPEMType, Bytes: blob})), nil
}

// fingerprint is the key's SHA256 fingerprint as ssh-keygen -l prints it.
func fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }
