// Package alipaycrypt is Alipay's cryptography for mini programs, written
// from Alipay's open-platform documentation and checked against the
// fixtures of Alipay's own SDKs (see the tests):
//
//   - RSA2: SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), the signature
//     standard base64;
//   - the request's sign string (SignString): every parameter but sign,
//     empty values left out, sorted by name, "name=value" joined by "&",
//     values raw (not URL-encoded);
//   - the answer's sign string (ResponseContent): the exact bytes of the
//     "<method>_response" (or "error_response") object as they came, never
//     re-marshalled (a re-marshalled object is not what Alipay signed);
//   - encrypted content (OpenContent): AES-CBC with the app's content key
//     (接口内容加密方式, base64 in the console; AES-128 for a 16-byte key),
//     IV sixteen zero bytes, PKCS#7 padding; the signature of encrypted
//     content covers the base64 ciphertext in double quotes.
//
// Errors never quote keys, signatures or content.
package alipaycrypt

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// SignType is the only signature type supported: RSA2.
const SignType = "RSA2"

// ErrSignature: a signature is missing, not base64, or does not verify.
var ErrSignature = errors.New("alipaycrypt: the signature does not verify")

var b64 = base64.StdEncoding

// SignString is the string a request's signature covers: params but
// "sign" (and empty values), sorted by name, name=value joined by "&".
func SignString(params map[string]string) string {
	names := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || v == "" {
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// Sign signs content with RSA2 (SHA256withRSA), base64.
func Sign(key *rsa.PrivateKey, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("alipaycrypt: cannot sign: %w", err)
	}
	return b64.EncodeToString(sig), nil
}

// Verify checks an RSA2 signature (base64) of content. Like Alipay's Java
// SDK, content whose escaped slashes ("\/") fail is tried once more with
// them unescaped (some answers are signed over the unescaped text).
func Verify(pub *rsa.PublicKey, content []byte, sig string) error {
	_, err := VerifyContent(pub, content, sig)
	return err
}

// VerifyContent is Verify that returns the bytes the signature covers:
// content, or content with its escaped slashes unescaped when that is what
// verified. Read those, never content itself: "\\/" in content would
// otherwise decode to another text than the one Alipay signed.
func VerifyContent(pub *rsa.PublicKey, content []byte, sig string) ([]byte, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(raw) == 0 || pub == nil {
		return nil, ErrSignature
	}
	sum := sha256.Sum256(content)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) == nil {
		return content, nil
	}
	if bytes.Contains(content, []byte(`\/`)) {
		alt := bytes.ReplaceAll(content, []byte(`\/`), []byte(`/`))
		sum = sha256.Sum256(alt)
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) == nil {
			return alt, nil
		}
	}
	return nil, ErrSignature
}

// ResponseContent finds, in a gateway answer {"<key>": {...}, "sign":
// "..."}, the exact bytes of the value of key (what Alipay signed) and the
// sign. ok is false when the answer has no such key. err: the answer is
// not one JSON object.
func ResponseContent(body []byte, key string) (content []byte, sign string, ok bool, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, "", false, errors.New("alipaycrypt: the answer is not a JSON object")
	}
	v, ok := top[key]
	if !ok {
		return nil, "", false, nil
	}
	if s, has := top["sign"]; has {
		if err := json.Unmarshal(s, &sign); err != nil {
			sign = ""
		}
	}
	return []byte(v), sign, true, nil
}

// ParsePublicKey reads an RSA public key: PEM ("PUBLIC KEY", PKIX, or
// "RSA PUBLIC KEY", PKCS#1), or the bare base64 of the PKIX DER as
// Alipay's console shows its public key. Errors never quote the text.
func ParsePublicKey(text []byte) (*rsa.PublicKey, error) {
	text = bytes.TrimSpace(text)
	var der []byte
	typ := "PUBLIC KEY"
	if block, _ := pem.Decode(text); block != nil {
		der, typ = block.Bytes, block.Type
	} else {
		d, err := b64.DecodeString(string(bytes.Join(bytes.Fields(text), nil)))
		if err != nil {
			return nil, errors.New("neither a PEM block nor the base64 of a public key")
		}
		der = d
	}
	var key any
	var err error
	switch typ {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(der)
	case "CERTIFICATE":
		return nil, errors.New("a certificate, not a public key (the public-key-certificate mode is not supported: give Alipay's public key)")
	default:
		return nil, fmt.Errorf("a PEM block of type %q is not a public key", typ)
	}
	if err != nil {
		return nil, errors.New("not a readable " + typ)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not an RSA key (RSA2 is RSA)", key)
	}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("the RSA key has %d bits; RSA2 keys have at least 2048", pub.N.BitLen())
	}
	return pub, nil
}

// ParseAESKey reads the app's content key: base64 of 16 bytes (AES-128,
// what Alipay's console generates), or 24 or 32.
func ParseAESKey(text string) ([]byte, error) {
	k, err := b64.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, errors.New("not base64")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("%d bytes once decoded; an AES key has 16 (AES-128, as Alipay's console makes them), 24 or 32", len(k))
}

// Encrypt is AES-CBC with a zero IV and PKCS#7 padding, base64: how Alipay
// encrypts content (for tests and for requests with encrypted content).
func Encrypt(key, plain []byte) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", errors.New("alipaycrypt: unusable AES key")
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, len(plain)+pad)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, make([]byte, aes.BlockSize)).CryptBlocks(buf, buf)
	return b64.EncodeToString(buf), nil
}

// ErrDecrypt: the content is not base64 of whole blocks, or does not
// decrypt to valid PKCS#7 padding with the key.
var ErrDecrypt = errors.New("alipaycrypt: the content does not decrypt with the app's AES key")

// Decrypt reverses Encrypt (strict PKCS#7).
func Decrypt(key []byte, content string) ([]byte, error) {
	ct, err := b64.DecodeString(content)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrDecrypt
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrDecrypt
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, make([]byte, aes.BlockSize)).CryptBlocks(plain, ct)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, ErrDecrypt
	}
	for _, c := range plain[len(plain)-pad:] {
		if int(c) != pad {
			return nil, ErrDecrypt
		}
	}
	return plain[:len(plain)-pad], nil
}

// Envelope is the front end's signed content (my.getPhoneNumber's
// res.response, parsed): {"response": "<base64>", "sign", "sign_type",
// "encrypt_type", "charset"}.
type Envelope struct {
	Response    string `json:"response"`
	Sign        string `json:"sign"`
	SignType    string `json:"sign_type"`
	EncryptType string `json:"encrypt_type"`
	Charset     string `json:"charset"`
}

// Envelope errors, key-independent.
var (
	ErrEnvelope     = errors.New("alipaycrypt: not a signed response object {\"response\", \"sign\"}")
	ErrNotEncrypted = errors.New("alipaycrypt: the response is not encrypted (set the content key in Alipay's console)")
	ErrNotSigned    = errors.New("alipaycrypt: the response carries no sign")
	ErrSignType     = errors.New("alipaycrypt: sign_type is not RSA2")
	ErrEncryptType  = errors.New("alipaycrypt: encrypt_type is not AES")
)

// ParseEnvelope reads and checks, without any key, the front end's
// response text.
func ParseEnvelope(text string) (Envelope, error) {
	var e Envelope
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, "{") || json.Unmarshal([]byte(t), &e) != nil {
		return Envelope{}, ErrEnvelope
	}
	switch {
	case e.Response == "":
		return Envelope{}, ErrEnvelope
	case strings.HasPrefix(strings.TrimSpace(e.Response), "{"):
		return Envelope{}, ErrNotEncrypted
	case e.Sign == "":
		return Envelope{}, ErrNotSigned
	case e.SignType != "" && !strings.EqualFold(e.SignType, SignType):
		return Envelope{}, ErrSignType
	case e.EncryptType != "" && !strings.EqualFold(e.EncryptType, "AES"):
		return Envelope{}, ErrEncryptType
	}
	if _, err := b64.DecodeString(e.Response); err != nil {
		return Envelope{}, ErrEnvelope
	}
	return e, nil
}

// OpenContent verifies the envelope's signature over the quoted ciphertext
// with Alipay's public key, then decrypts it with the app's AES key.
func OpenContent(pub *rsa.PublicKey, aesKey []byte, e Envelope) ([]byte, error) {
	if err := Verify(pub, []byte(`"`+e.Response+`"`), e.Sign); err != nil {
		return nil, err
	}
	return Decrypt(aesKey, e.Response)
}

// SealContent is OpenContent's reverse (tests and simulators): encrypt
// plain, sign the quoted ciphertext with key, return the envelope's JSON.
func SealContent(key *rsa.PrivateKey, aesKey, plain []byte) (string, error) {
	ct, err := Encrypt(aesKey, plain)
	if err != nil {
		return "", err
	}
	sig, err := Sign(key, []byte(`"`+ct+`"`))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(Envelope{Response: ct, Sign: sig, SignType: SignType, EncryptType: "AES", Charset: "UTF-8"})
	return string(b), err
}
