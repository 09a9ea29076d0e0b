package rackspace

// apiKeyAuth is Rackspace Identity's own credential type for Keystone
// v2.0 token requests:
//
//	{"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": "...", "apiKey": "..."}}}
//
// gophercloud v2 builds only passwordCredentials and token bodies, but
// takes any tokens.AuthOptionsBuilder, so this type is the whole
// extension: gophercloud still sends it, reads the catalog and, because
// CanReauth is true, repeats it when a token expires.
type apiKeyAuth struct {
	Username string
	APIKey   string
}

// ToTokenV2CreateMap builds the request body.
func (a apiKeyAuth) ToTokenV2CreateMap() (map[string]any, error) {
	return map[string]any{"auth": map[string]any{
		"RAX-KSKEY:apiKeyCredentials": map[string]any{"username": a.Username, "apiKey": a.APIKey},
	}}, nil
}

// CanReauth lets gophercloud authenticate again on a 401.
func (a apiKeyAuth) CanReauth() bool { return true }

// String keeps the API key out of anything that prints the value.
func (a apiKeyAuth) String() string { return "rackspace api key credentials for " + a.Username }

// GoString does the same for %#v.
func (a apiKeyAuth) GoString() string { return a.String() }
