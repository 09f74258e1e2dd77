package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the paths of the control plane's key material. Everything is created once per
// data directory and reused, so a restarted stack keeps its kubeconfig valid.
type pki struct {
	caCert, caKey           string
	servingCert, servingKey string
	saPublic, saPrivate     string
	tokenFile               string
	caPEM                   []byte
	adminToken              string
}

func ensurePKI(dir string, servingIPs []net.IP) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caCert:      filepath.Join(dir, "ca.crt"),
		caKey:       filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saPublic:    filepath.Join(dir, "sa.pub"),
		saPrivate:   filepath.Join(dir, "sa.key"),
		tokenFile:   filepath.Join(dir, "tokens.csv"),
	}
	if err := p.ensureCertificates(servingIPs); err != nil {
		return nil, err
	}
	if !exists(p.saPrivate) {
		if err := p.writeServiceAccountKeys(); err != nil {
			return nil, err
		}
	}
	if !exists(p.tokenFile) {
		token := make([]byte, 24)
		if _, err := rand.Read(token); err != nil {
			return nil, err
		}
		line := fmt.Sprintf("%s,admin,admin,system:masters\n", hex.EncodeToString(token))
		if err := os.WriteFile(p.tokenFile, []byte(line), 0o600); err != nil {
			return nil, err
		}
	}
	var err error
	if p.caPEM, err = os.ReadFile(p.caCert); err != nil {
		return nil, err
	}
	tokens, err := os.ReadFile(p.tokenFile)
	if err != nil {
		return nil, err
	}
	for i, c := range tokens {
		if c == ',' {
			p.adminToken = string(tokens[:i])
			break
		}
	}
	return p, nil
}

// ensureCertificates creates the CA once, and issues the serving certificate for loopback and
// the names of the `kubernetes` Service, plus servingIPs (the address Pods on the local node
// reach the apiserver at). A serving certificate lacking one of those is issued again by the
// same CA, so kubeconfigs and tokens stay valid.
func (p *pki) ensureCertificates(servingIPs []net.IP) error {
	if !exists(p.caCert) || !exists(p.caKey) {
		if err := p.writeCA(); err != nil {
			return err
		}
	}
	ips := append([]net.IP{net.ParseIP("127.0.0.1")}, servingIPs...)
	if current, err := readCert(p.servingCert); err == nil && exists(p.servingKey) && coversIPs(current, ips) {
		return nil
	}
	ca, err := readCert(p.caCert)
	if err != nil {
		return err
	}
	caKey, err := readECKey(p.caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeECKey(p.servingKey, key); err != nil {
		return err
	}
	return writePEM(p.servingCert, "CERTIFICATE", der, 0o644)
}

func (p *pki) writeCA() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "secret-sync local CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeECKey(p.caKey, caKey); err != nil {
		return err
	}
	// A new CA invalidates any serving certificate of the old one.
	_ = os.Remove(p.servingCert)
	return writePEM(p.caCert, "CERTIFICATE", caDER, 0o644)
}

func coversIPs(cert *x509.Certificate, ips []net.IP) bool {
	for _, ip := range ips {
		if cert.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

func readCert(path string) (*x509.Certificate, error) {
	block, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(block.Bytes)
}

func readECKey(path string) (*ecdsa.PrivateKey, error) {
	block, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

func readPEM(path string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return block, nil
}

func (p *pki) writeServiceAccountKeys() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(p.saPublic, "PUBLIC KEY", pub, 0o644); err != nil {
		return err
	}
	return writePEM(p.saPrivate, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600)
}

func writeKubeconfig(path, server string, p *pki) error {
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: secret-sync-local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: secret-sync-local
  context:
    cluster: secret-sync-local
    user: admin
    namespace: default
current-context: secret-sync-local
`, server, base64.StdEncoding.EncodeToString(p.caPEM), p.adminToken)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(kubeconfig), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeECKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
