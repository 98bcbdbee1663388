package prometheus

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/shepherd-release/shepherd/internal/redact"
)

// credentials names where the worker finds the secrets; the secrets themselves are read on every query,
// so a rotated token file is picked up without restarting the worker, and they never leave the
// Authorization header (no logs, no error messages).
type credentials struct {
	tokenEnv, tokenFile string
	user                string
	passwordEnv         string
	passwordFile        string
}

func newCredentials(cfg Config) (credentials, error) {
	c := credentials{
		tokenEnv: cfg.BearerTokenEnv, tokenFile: cfg.BearerTokenFile,
		user: cfg.BasicAuthUser, passwordEnv: cfg.BasicAuthPasswordEnv, passwordFile: cfg.BasicAuthPasswordFile,
	}
	bearer := c.tokenEnv != "" || c.tokenFile != ""
	basic := c.user != "" || c.passwordEnv != "" || c.passwordFile != ""
	switch {
	case c.tokenEnv != "" && c.tokenFile != "":
		return c, credErr("give bearerTokenEnv or bearerTokenFile, not both")
	case c.passwordEnv != "" && c.passwordFile != "":
		return c, credErr("give basicAuthPasswordEnv or basicAuthPasswordFile, not both")
	case bearer && basic:
		return c, credErr("give a bearer token or basic auth in the metrics source, not both " +
			"(a request carries one Authorization header)")
	case basic && c.user == "":
		return c, credErr("basicAuthUser is required with a basic-auth password")
	case basic && c.passwordEnv == "" && c.passwordFile == "":
		return c, credErr("basicAuthUser needs basicAuthPasswordEnv or basicAuthPasswordFile")
	case strings.Contains(c.user, ":"):
		return c, credErr("basicAuthUser must not contain ':' (basic auth cannot encode it)")
	}
	return c, nil
}

// authorization returns the Authorization header value, or "" when no credentials are configured.
func (c credentials) authorization() (string, error) {
	switch {
	case c.tokenEnv != "" || c.tokenFile != "":
		tok, err := readSecret(c.tokenEnv, c.tokenFile, "bearerTokenEnv", "bearerTokenFile", "bearer token")
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	case c.user != "":
		pw, err := readSecret(c.passwordEnv, c.passwordFile, "basicAuthPasswordEnv", "basicAuthPasswordFile",
			"basic-auth password")
		if err != nil {
			return "", err
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+pw)), nil
	}
	return "", nil
}

// readSecret reads a secret from the environment variable env or else the file; errors name the variable
// or file and the spec key, never the content.
func readSecret(env, file, envKey, fileKey, what string) (string, error) {
	if env != "" {
		redact.Names(env) // masked wherever an answer echoes it
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", credErr(fmt.Sprintf("environment variable %s (%s) is not set in the "+
				"worker's environment; set it to the %s", env, envKey, what))
		}
		if strings.TrimSpace(v) == "" {
			return "", credErr(fmt.Sprintf("environment variable %s (%s) is empty; set it to "+
				"the %s", env, envKey, what))
		}
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// *fs.PathError names the file and the reason, not the content.
		return "", &Error{Kind: ErrCredentials, Msg: fmt.Sprintf("reading the %s file (%s) "+
			"on the worker", what, fileKey), Cause: err}
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", credErr(fmt.Sprintf("%s file %s (%s) is empty", what, file, fileKey))
	}
	redact.Values(v)
	return v, nil
}

func credErr(msg string) error { return &Error{Kind: ErrCredentials, Msg: msg} }
