// Package approvals proves who approved a release: an approval carries an SSH signature (made with
// `ssh-keygen -Y sign`, as git signs commits) over exactly what it approves — the workflow, the run, the
// gate, the action and an expiry — and the worker verifies it against the keys its operators trust (an
// allowed_signers file) and the roles they give those keys. Pure Go: no Temporal, nothing above it.
package approvals

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Namespace is the SSH signature namespace of Shepherd approvals (`ssh-keygen -Y sign -n shepherd-approval`):
// a signature made for anything else (a git commit, a file) is not an approval.
const Namespace = "shepherd-approval"

// MaxValidity bounds how far in the future an approval may expire: a signed approval is a bearer token
// for one gate of one run, so it should not outlive the moment it is given by much.
const MaxValidity = 24 * time.Hour

// Claim is what an approver signs. Its canonical form (Payload) binds the approval to one workflow run,
// one gate and one action, until Expires, so it cannot be replayed onto another release, run or stage.
type Claim struct {
	WorkflowID string `json:"workflowID"`
	RunID      string `json:"runID"`
	// Gate names what is approved: "stage:3", "signoff:qa", "freeze:stage:3".
	Gate string `json:"gate"`
	// Action is the control: "approve", "resume".
	Action  string    `json:"action"`
	Expires time.Time `json:"expires"`
}

// Payload is the exact bytes an approver signs: the claim as JSON with its fields in this order and the
// expiry in UTC, seconds precision. `shepherd approve --print-payload` prints it for signing by hand.
func (c Claim) Payload() []byte {
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	b, _ := json.Marshal(c) // a struct of strings and a time: cannot fail
	return b
}

// Signed is an approval as it travels in a control request: the claim and its armored signature.
type Signed struct {
	Claim     Claim  `json:"claim"`
	Signature string `json:"signature"`
}

// Identity is a verified approver.
type Identity struct {
	// Principal is the name the operators' allowed_signers file gives the key (e.g. an e-mail address).
	Principal string `json:"principal"`
	// Fingerprint is the key's SHA256 fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Roles are the roles the operators give the principal.
	Roles []string `json:"roles,omitempty"`
}

// String is "alice@example.com (SHA256:…)".
func (i Identity) String() string { return i.Principal + " (" + i.Fingerprint + ")" }

// allowedSigner is one line of an allowed_signers file.
type allowedSigner struct {
	principals []string
	namespaces []string // empty: any
	key        ssh.PublicKey
	line       int
}

// ParseAllowedSigners reads an allowed_signers file in the format of ssh-keygen(1) ("ALLOWED SIGNERS"):
// `principals [namespaces="..."] keytype base64-key [comment]`. Certificate authorities and validity
// options are not supported and are refused rather than ignored.
func ParseAllowedSigners(r io.Reader) ([]allowedSigner, error) {
	var out []allowedSigner
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			return nil, fmt.Errorf("allowed signers line %d: want `principals [options] keytype key`", n)
		}
		s := allowedSigner{principals: strings.Split(fields[0], ","), line: n}
		rest := fields[1:]
		if !strings.HasPrefix(rest[0], "ssh-") && !strings.HasPrefix(rest[0], "ecdsa-") && !strings.HasPrefix(rest[0], "sk-") {
			for _, opt := range splitOptions(rest[0]) {
				k, v, _ := strings.Cut(opt, "=")
				switch strings.ToLower(k) {
				case "namespaces":
					s.namespaces = strings.Split(strings.Trim(v, `"`), ",")
				default:
					return nil, fmt.Errorf("allowed signers line %d: option %q is not supported", n, k)
				}
			}
			rest = rest[1:]
		}
		if len(rest) < 2 {
			return nil, fmt.Errorf("allowed signers line %d: missing key", n)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest[0] + " " + rest[1]))
		if err != nil {
			return nil, fmt.Errorf("allowed signers line %d: %w", n, err)
		}
		s.key = key
		for _, p := range s.principals {
			if strings.ContainsAny(p, "*?") {
				return nil, fmt.Errorf("allowed signers line %d: principal patterns (%q) are not supported: name each principal", n, p)
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// splitOptions splits an options field on the commas outside double quotes.
func splitOptions(s string) []string {
	var out []string
	quoted, start := false, 0
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Verifier checks signed approvals against the operators' trust anchors.
type Verifier struct {
	signers []allowedSigner
	// roles maps a role to the principals who hold it.
	roles map[string][]string
}

// NewVerifier builds a verifier from an allowed_signers file's content and the roles (role → principals).
func NewVerifier(allowedSigners io.Reader, roles map[string][]string) (*Verifier, error) {
	signers, err := ParseAllowedSigners(allowedSigners)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, s := range signers {
		for _, p := range s.principals {
			known[p] = true
		}
	}
	for _, role := range slices.Sorted(maps.Keys(roles)) {
		for _, p := range roles[role] {
			if !known[p] {
				return nil, fmt.Errorf("role %q names %q, who has no key in the allowed signers", role, p)
			}
		}
	}
	return &Verifier{signers: signers, roles: roles}, nil
}

// Rejection errors, for callers that tell them apart.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrUnknownKey   = errors.New("unknown key")
	ErrExpired      = errors.New("expired")
	ErrWrongClaim   = errors.New("signed for something else")
	ErrWrongRole    = errors.New("not in the role")
)

// Verify checks that s is a valid signature, by a key the operators trust, over exactly want (the
// workflow, run, gate and action being approved now), not expired at now, by a principal holding one of
// roles (any trusted principal when roles is empty). It returns who signed.
func (v *Verifier) Verify(s Signed, want Claim, now time.Time, roles []string) (Identity, error) {
	c := s.Claim
	switch {
	case c.WorkflowID != want.WorkflowID || c.RunID != want.RunID:
		return Identity{}, fmt.Errorf("%w: the approval is for %s run %s, not this release (%s run %s)", ErrWrongClaim, c.WorkflowID, c.RunID, want.WorkflowID, want.RunID)
	case c.Gate != want.Gate || c.Action != want.Action:
		return Identity{}, fmt.Errorf("%w: the approval is for %s %s, but the release waits for %s %s", ErrWrongClaim, c.Action, c.Gate, want.Action, want.Gate)
	case !now.Before(c.Expires):
		return Identity{}, fmt.Errorf("%w: the approval expired at %s", ErrExpired, c.Expires.UTC().Format(time.RFC3339))
	case c.Expires.After(now.Add(MaxValidity)):
		return Identity{}, fmt.Errorf("%w: the approval is valid until %s, more than %s ahead; sign a shorter one", ErrWrongClaim, c.Expires.UTC().Format(time.RFC3339), MaxValidity)
	}
	sig, err := parseArmored(s.Signature)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if err := sig.verify(Namespace, c.Payload()); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	id := Identity{Fingerprint: fingerprint(sig.key)}
	for _, a := range v.signers {
		if string(a.key.Marshal()) != string(sig.key.Marshal()) {
			continue
		}
		if len(a.namespaces) > 0 && !slices.Contains(a.namespaces, Namespace) {
			continue
		}
		id.Principal = a.principals[0]
		for _, p := range a.principals {
			id.Roles = append(id.Roles, v.rolesOf(p)...)
		}
		break
	}
	if id.Principal == "" {
		return Identity{}, fmt.Errorf("%w: key %s is not in the operators' allowed signers", ErrUnknownKey, id.Fingerprint)
	}
	slices.Sort(id.Roles)
	id.Roles = slices.Compact(id.Roles)
	if len(roles) > 0 && !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(id.Roles, r) }) {
		return id, fmt.Errorf("%w: %s holds %s, the gate needs %s", ErrWrongRole, id.Principal, orNone(id.Roles), strings.Join(roles, " or "))
	}
	return id, nil
}

func (v *Verifier) rolesOf(principal string) []string {
	var out []string
	for role, ps := range v.roles {
		if slices.Contains(ps, principal) {
			out = append(out, role)
		}
	}
	return out
}

func orNone(roles []string) string {
	if len(roles) == 0 {
		return "no role"
	}
	return "roles " + strings.Join(roles, ", ")
}

// Policy is what the worker's operators decide about approvals: whom to trust, and where an unsigned
// approval is still accepted (recorded as unverified).
type Policy struct {
	// Verifier holds the trust anchors; nil when none are configured (then no signature can verify).
	Verifier *Verifier
	// UnsignedEnvironments lists the environments where an unsigned approval is accepted; "*" is every one.
	UnsignedEnvironments []string
	// FourEyesEnvironments lists the environments where a release must be started signed and its starter
	// cannot approve its gates; "*" is every one.
	FourEyesEnvironments []string
	// Freezes are the change-freeze windows; BreakGlassRoles the roles whose approval lets a release go
	// ahead during one (none: nobody can).
	Freezes         []Freeze
	BreakGlassRoles []string
	// SignedResume makes resume an approval-like action: outside UnsignedEnvironments it must be signed.
	// Otherwise anyone may resume (recorded unverified unless signed). Pause and abort never need one.
	SignedResume bool
}

// FourEyes reports whether four eyes are required in environment.
func (p Policy) FourEyes(environment string) bool {
	return slices.Contains(p.FourEyesEnvironments, "*") || slices.Contains(p.FourEyesEnvironments, environment)
}

// AllowsUnsigned reports whether an unsigned approval is accepted in environment.
func (p Policy) AllowsUnsigned(environment string) bool {
	return slices.Contains(p.UnsignedEnvironments, "*") || slices.Contains(p.UnsignedEnvironments, environment)
}
