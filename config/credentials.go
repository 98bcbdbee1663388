package config

import (
	"encoding/json"
	"slices"
	"strings"
)

// checkCredentialSources refuses a credential source naming one of the worker's own Temporal client
// variables (TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_KEY_DATA, ...): a provider sends its credential to its
// endpoint, and no endpoint of a release provider should receive the worker's access to Temporal. Sources
// are the keys a provider reads a variable name from: any key ending in "Env" (bearerTokenEnv, urlEnv),
// the values of a headerEnv map, and "env" in a secret reference ({env: VAR}); an exec target's env map
// sets values and is not a source.
func checkCredentialSources(p *Problems, path string, settings json.RawMessage) {
	var v any
	if json.Unmarshal(settings, &v) != nil {
		return
	}
	walkSources(p, path, "", v)
}

func walkSources(p *Problems, path, key string, v any) {
	switch x := v.(type) {
	case string:
		if (key == "env" || strings.HasSuffix(key, "Env")) && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(x)), "TEMPORAL_") {
			p.Add(path, "names the worker's own Temporal credential (%s); a provider must read a credential of "+
				"its own endpoint", x)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			child := k
			if strings.HasSuffix(key, "Env") {
				child = key // a headerEnv map: its values are variable names
			} else if key == "env" {
				continue // an exec env map sets values
			}
			walkSources(p, path+"."+k, child, x[k])
		}
	case []any:
		for _, e := range x {
			walkSources(p, path, key, e)
		}
	}
}
