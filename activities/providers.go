package activities

import "github.com/shepherd-release/shepherd/providers"

// Target is providers.Target, kept here for callers of this package.
type Target = providers.Target

// Metrics is providers.Metrics, kept here for callers of this package.
type Metrics = providers.Metrics
