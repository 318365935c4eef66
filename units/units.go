// Package units holds the unit pair users copy, myapp.socket and
// myapp.service, as the files themselves and embedded for `drover init`,
// so the lab, the packages, the README and init all use one source.
package units

import _ "embed"

// Socket and Service are units/myapp.socket and units/myapp.service.
var (
	//go:embed myapp.socket
	Socket string
	//go:embed myapp.service
	Service string
)

// Name is the placeholder unit name in the templates.
const Name = "myapp"
