package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A spec is stored in workflow history and in the archived report, and whoever can read the namespace
// can read it: a credential written into it is a credential leaked. validateNoCredentials refuses the
// common ways one gets written in (URL user info, token query parameters, webhook URLs whose path is the
// secret, credential headers) and says where it belongs instead: the worker's environment, named by the
// spec's *Env keys. The messages never repeat the value.

// userInfoRE matches a URL (or URL template) with user info: scheme://user[:password]@host.
var userInfoRE = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@`)

// secretParamWords mark a query parameter or header name as a credential's when the name contains one.
var secretParamWords = []string{"token", "secret", "password", "passwd", "signature", "apikey", "api_key",
	"api-key", "credential", "session"}

// secretParamNames are credential parameter names too short to look for inside other names ("keyword"
// is not a key).
var secretParamNames = []string{"key", "auth", "sig", "code", "pwd", "pass"}

// secretHeaders are credential headers by name (lowercase).
var secretHeaders = []string{"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}

// webhookHosts are hosts whose webhook URLs carry their secret in the path.
var webhookHosts = []string{"hooks.slack.com", "hooks.slack-gov.com", "discord.com", "discordapp.com",
	"webhook.office.com", "outlook.office.com", "chat.googleapis.com"}

// checkCredentialSource refuses a credential source naming one of the worker's own Temporal client
// variables (TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_KEY_DATA, ...): the spec chooses where a credential
// is sent, so naming one would send the worker's Temporal access to the spec writer's server.
func checkCredentialSource(p *problems, path, env string) {
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(env)), "TEMPORAL_") {
		p.add(path, "names the worker's own Temporal credential (%s); a spec may only name variables set "+
			"for the service it releases", env)
	}
}

// checkHeaderEnv applies checkCredentialSource to each header of a headerEnv map, in sorted order.
func checkHeaderEnv(p *problems, path string, headerEnv map[string]string) {
	names := make([]string, 0, len(headerEnv))
	for h := range headerEnv {
		names = append(names, h)
	}
	slices.Sort(names)
	for _, h := range names {
		checkCredentialSource(p, path+"."+h, headerEnv[h])
	}
}

func validateNoCredentials(p *problems, r Release) {
	const envAdvice = "put the credential in the worker's environment (or its configuration), not in the spec"
	if a := r.Analysis.Prometheus; a != nil {
		checkURLCredentials(p, "analysis.prometheus.address", a.Address,
			"use basicAuthUser with basicAuthPasswordEnv, or bearerTokenEnv, naming a variable of the worker")
		checkCredentialSource(p, "analysis.prometheus.bearerTokenEnv", a.BearerTokenEnv)
		checkCredentialSource(p, "analysis.prometheus.basicAuthPasswordEnv", a.BasicAuthPasswordEnv)
	}
	if l := r.Target.Local; l != nil {
		checkURLCredentials(p, "target.local.controller", l.Controller, envAdvice)
	}
	for i, c := range r.Prechecks {
		if c.HTTP != nil {
			checkURLCredentials(p, fmt.Sprintf("prechecks[%d].http.url", i), c.HTTP.URL,
				"send it as a header with headerEnv, naming a variable of the worker")
			checkHeaderEnv(p, fmt.Sprintf("prechecks[%d].http.headerEnv", i), c.HTTP.HeaderEnv)
		}
	}
	if f := r.Flags; f != nil {
		pr := f.Provider
		checkURLCredentials(p, "flags.provider.url", pr.URL, "send it as a header with headerEnv, naming a variable of the worker")
		checkHeaderEnv(p, "flags.provider.headerEnv", pr.HeaderEnv)
		names := make([]string, 0, len(pr.Headers))
		for h := range pr.Headers {
			names = append(names, h)
		}
		slices.Sort(names)
		for _, h := range names {
			v := strings.ToLower(strings.TrimSpace(pr.Headers[h]))
			if isSecretName(h, secretHeaders) || strings.HasPrefix(v, "bearer ") || strings.HasPrefix(v, "basic ") {
				p.add("flags.provider.headers."+h, "is a credential header; credentials must not be written in the "+
					"spec (it is stored in workflow history and reports): move it to headerEnv, naming a variable "+
					"of the worker that holds the value")
			}
		}
	}
	for i, n := range r.Notifications {
		checkCredentialSource(p, fmt.Sprintf("notifications[%d].urlEnv", i), n.URLEnv)
		path := fmt.Sprintf("notifications[%d].url", i)
		advice := "put the URL in a variable of the worker and name it with urlEnv"
		if host := urlHost(n.URL); host != "" && slices.ContainsFunc(webhookHosts, func(h string) bool {
			return host == h || strings.HasSuffix(host, "."+h)
		}) {
			p.add(path, "is a %s webhook URL, whose path is its credential; credentials must not be written in the "+
				"spec (it is stored in workflow history and reports): %s", host, advice)
			continue
		}
		checkURLCredentials(p, path, n.URL, advice)
	}
	if t := r.Tag; t != nil {
		checkURLCredentials(p, "tag.remote", t.Remote, "name a remote configured on the worker's clone, with "+
			"git's credential helper or an SSH key holding the credential")
	}
}

// checkURLCredentials reports user info or a credential query parameter in a URL or URL template.
func checkURLCredentials(p *problems, path, raw, advice string) {
	var what string
	switch {
	case raw == "":
		return
	case userInfoRE.MatchString(raw):
		what = "a user name or password before '@'"
	default:
		if name := secretQueryParam(raw); name != "" {
			what = fmt.Sprintf("the query parameter %q", name)
		}
	}
	if what != "" {
		p.add(path, "holds a credential (%s); credentials must not be written in the spec (it is stored in "+
			"workflow history and reports): %s", what, advice)
	}
}

// secretQueryParam returns the name of the first credential-like query parameter of raw, or "".
func secretQueryParam(raw string) string {
	_, query, ok := strings.Cut(raw, "?")
	if !ok {
		return ""
	}
	query, _, _ = strings.Cut(query, "#")
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(kv, "=")
		if isSecretName(name, secretParamNames) {
			return name
		}
	}
	return ""
}

// isSecretName reports whether a parameter or header name is one of exact (case-insensitively) or
// contains a credential word.
func isSecretName(name string, exact []string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if slices.Contains(exact, n) {
		return true
	}
	return slices.ContainsFunc(secretParamWords, func(w string) bool { return strings.Contains(n, w) })
}

// urlHost returns the lowercase host name of an absolute URL (or URL template), or "".
func urlHost(raw string) string {
	_, rest, ok := strings.Cut(strings.TrimSpace(raw), "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "]") {
		rest = rest[:i]
	}
	return strings.ToLower(rest)
}
