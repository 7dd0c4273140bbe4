package emulator

import (
	"math/bits"
	"strconv"
	"time"
)

// Generate returns n realistic Directory Insights events, the same for the same arguments, with
// ascending timestamps spread over [from, to). It is Backlog{seed, n, from, to} held in memory.
func Generate(seed int64, n int, from, to time.Time) [][]byte {
	backlog := Backlog{Seed: seed, N: n, From: from, To: to}
	events := make([][]byte, max(n, 0))
	for i := range events {
		events[i] = backlog.Event(i)
	}
	return events
}

// Backlog is N generated events spread over [From, To) in ascending timestamp order. Event i is
// synthesised on demand from (Seed, i), so a backlog of millions of events costs no memory, and
// Timestamp is cheap enough to binary-search the backlog by index.
//
// Each event lies in its own slot, the i-th of N equal parts of [From, To), which keeps timestamps
// ascending whatever precision each is written with. About one event in ten shares a millisecond
// with its neighbour, both written with 8 or 9 fractional digits, so that code which orders or
// resumes by millisecond is exercised; such a pair lies within its two slots. When To-From is
// shorter than N nanoseconds, events share instants.
type Backlog struct {
	Seed     int64
	N        int
	From, To time.Time
}

// Event returns event i (0 ≤ i < N) as minified JSON.
func (b Backlog) Event(i int) []byte {
	return b.appendEvent(make([]byte, 0, 1536), i)
}

// appendEvent appends event i to dst, so that a page of events can be written in one buffer.
func (b Backlog) appendEvent(dst []byte, i int) []byte {
	offset, digits := b.placement(i)
	return b.writeEvent(dst, i, b.From.Add(time.Duration(offset)), digits)
}

// Timestamp returns the timestamp event i carries, without building the event.
func (b Backlog) Timestamp(i int) time.Time {
	offset, _ := b.placement(i)
	return b.From.Add(time.Duration(offset))
}

// service returns the service event i belongs to, without building the event.
func (b Backlog) service(i int) string { return b.kind(i).service }

// millisecond returns the epoch millisecond of event i's timestamp, the unit the API sorts by.
func (b Backlog) millisecond(i int) int64 { return b.Timestamp(i).UnixMilli() }

// Salts keep the hash streams drawn for different purposes from the same (seed, i) independent.
const (
	saltKind uint64 = iota + 1
	saltTime
	saltPair
	saltBody
	saltID
	saltOrganization
	saltUser
	saltHost
	saltApplication
	saltTieBreak
)

// hash is a deterministic 64-bit value for (Seed, salt, i); for a fixed seed and salt it is a
// bijection of i, so ids drawn from it do not collide within a backlog.
func (b Backlog) hash(salt uint64, i int) uint64 {
	return mix64(mix64(uint64(b.Seed)^(salt*0x9e3779b97f4a7c15)) + uint64(i))
}

// mix64 is the SplitMix64 finaliser: a bijection that scrambles every input bit into every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// span is To-From in nanoseconds, capped so that offset arithmetic cannot overflow.
func (b Backlog) span() int64 {
	span := int64(b.To.Sub(b.From))
	return min(max(span, 0), 1<<62)
}

// slotStart is where slot i begins, as an offset from From: exactly span*i/N.
func (b Backlog) slotStart(i int, span int64) int64 {
	hi, lo := bits.Mul64(uint64(span), uint64(i))
	quotient, _ := bits.Div64(hi, lo, uint64(b.N))
	return int64(quotient)
}

// gridOf is the spacing, in nanoseconds, of timestamps written with this many fractional digits.
func gridOf(digits int) int64 {
	switch digits {
	case 0:
		return 1e9
	case 3:
		return 1e6
	case 8:
		return 10
	}
	return 1
}

// finerDigits lists, for each precision, the precisions to fall back to, in order, when a slot
// holds no whole second or millisecond.
var finerDigits = map[int][]int{0: {0, 3, 9}, 3: {3, 9}, 8: {8, 9}, 9: {9}}

// placement returns event i's offset from From and how many fractional digits its timestamp has.
func (b Backlog) placement(i int) (offset int64, digits int) {
	span := b.span()
	lo, hi := b.slotStart(i, span), b.slotStart(i+1, span)
	base := int64(b.From.Nanosecond())
	r := b.hash(saltTime, i)
	if pairLo, pairHi, ok := b.sharedMillisecond(i, span, base); ok {
		lo, hi = pairLo, pairHi
		digits = 9
		if r&1 == 0 {
			digits = 8
		}
	} else {
		digits = b.kind(i).digits
	}
	for _, d := range finerDigits[digits] {
		if offset, ok := pickOnGrid(lo, hi, base, gridOf(d), r>>1); ok {
			return offset, d
		}
	}
	return lo, 9 // an empty slot: N events in less than N nanoseconds
}

// sharedMillisecond reports whether event i is one of a pair of neighbours that share a
// millisecond, and if so the range it must lie in. The pair's millisecond is the one holding the
// boundary between their slots, clipped to the two slots; the first event takes its first half and
// the second its second half. The pair stays within its two slots, in order, so timestamps stay
// ascending.
func (b Backlog) sharedMillisecond(i int, span, base int64) (lo, hi int64, ok bool) {
	first := i - i%2
	if first+1 >= b.N || b.hash(saltPair, first)%10 != 0 {
		return 0, 0, false
	}
	msStart := floorTo(base+b.slotStart(first+1, span), 1e6) - base
	lo = max(b.slotStart(first, span), msStart)
	hi = min(b.slotStart(first+2, span), msStart+1e6)
	if hi-lo < 2 { // no room for two different instants
		return 0, 0, false
	}
	middle := lo + (hi-lo)/2
	if i == first {
		return lo, middle, true
	}
	return middle, hi, true
}

// pickOnGrid picks, from r, a point of [lo, hi) on which base+point is a multiple of grid.
func pickOnGrid(lo, hi, base, grid int64, r uint64) (int64, bool) {
	first := floorTo(base+lo+grid-1, grid) - base
	if first >= hi {
		return 0, false
	}
	count := (hi-1-first)/grid + 1
	return first + int64(r%uint64(count))*grid, true
}

func floorTo(x, grid int64) int64 { return x - x%grid }

// eventKind is one type of event the generator writes.
type eventKind struct {
	eventType string
	service   string
	weight    int // out of 100
	digits    int // fractional digits of this service's timestamps, as seen in real events
	write     func(e *eventWriter)
}

var eventKinds = []eventKind{
	{"admin_login_attempt", "directory", 12, 3, writeAdminLogin},
	{"user_login_attempt", "directory", 14, 3, writeUserLogin},
	{"sso_auth", "sso", 20, 9, writeSSOAuth},
	{"radius_auth_attempt", "radius", 15, 0, writeRadiusAuth},
	{"user_update", "directory", 13, 3, writeUserUpdate},
	{"association_change", "directory", 10, 3, writeAssociationChange},
	{"login_attempt", "systems", 10, 9, writeSystemLogin},
	{"mdm_command_result", "mdm", 6, 3, writeMDMCommand},
}

func (b Backlog) kind(i int) eventKind {
	roll := int(b.hash(saltKind, i) % 100)
	for _, k := range eventKinds {
		if roll < k.weight {
			return k
		}
		roll -= k.weight
	}
	return eventKinds[0]
}

// eventWriter holds what one event is built from.
type eventWriter struct {
	jsonWriter
	rand      randomStream
	backlog   Backlog
	index     int
	kind      eventKind
	timestamp time.Time
	digits    int
	user      person
	admin     person
	success   bool
}

func (b Backlog) writeEvent(dst []byte, i int, timestamp time.Time, digits int) []byte {
	e := &eventWriter{
		jsonWriter: jsonWriter{buf: dst},
		rand:       randomStream{state: b.hash(saltBody, i)},
		backlog:    b,
		index:      i,
		kind:       b.kind(i),
		timestamp:  timestamp.UTC(),
		digits:     digits,
	}
	e.user = b.person(e.rand.intn(len(people)))
	e.admin = b.person(e.rand.intn(3)) // a few admins do all the administration
	e.success = e.rand.chance(0.8)
	e.object(func() { e.kind.write(e) })
	return e.buf
}

// Fields shared by several event types.

func (e *eventWriter) writeID() {
	if e.kind.service == "radius" {
		e.field("id").str(e.uuid())
		return
	}
	e.field("id").str(e.objectID())
}

// objectID is a MongoDB-style id: the event's epoch seconds, then unique bytes.
func (e *eventWriter) objectID() string { return e.objectIDNear(0) }

// objectIDNear is the k-th id of documents written with this event (k = 0: the event itself).
func (e *eventWriter) objectIDNear(k int) string {
	seconds := uint64(uint32(e.timestamp.Unix()))
	return hex(seconds, 8) + hex(e.backlog.hash(saltID+uint64(k)<<8, e.index), 16)
}

// uuid is an upper-case version-3 UUID, as RADIUS events carry.
func (e *eventWriter) uuid() string {
	hi, lo := e.backlog.hash(saltID, e.index), e.rand.next()
	s := hex(hi>>32, 8) + "-" + hex(hi>>16&0xffff, 4) + "-3" + hex(hi&0xfff, 3) + "-" +
		hex(0x8|lo>>62, 1) + hex(lo>>48&0xfff, 3) + "-" + hex(lo, 12)
	return toUpper(s)
}

// timestampLayouts write a UTC time with 0, 3, 8 or 9 fractional digits, trailing zeros kept.
var timestampLayouts = map[int]string{
	0: "2006-01-02T15:04:05Z",
	3: "2006-01-02T15:04:05.000Z",
	8: "2006-01-02T15:04:05.00000000Z",
	9: "2006-01-02T15:04:05.000000000Z",
}

func (e *eventWriter) writeTimestamp() {
	e.field("timestamp").str(e.timestamp.Format(timestampLayouts[e.digits]))
}

func (e *eventWriter) writeCommonTail() {
	e.field("event_type").str(e.kind.eventType)
	e.field("service").str(e.kind.service)
	e.writeOrganization()
	e.field("@version").str("1")
	e.writeID()
	e.writeTimestamp()
}

// writeOrganization writes the organization id. Real events sometimes carry it as null; the
// generator also leaves it out now and then, since a reader must not rely on it.
func (e *eventWriter) writeOrganization() {
	switch roll := e.rand.intn(100); {
	case roll < 5:
		e.field("organization").null()
	case roll < 10:
	default:
		e.field("organization").str(hex24(e.backlog.hash(saltOrganization, 0)))
	}
}

func (e *eventWriter) writeAdminInitiator() {
	e.field("initiated_by").object(func() {
		e.field("id").str(e.admin.id)
		e.field("type").str("admin")
		e.field("email").str(e.admin.email)
	})
}

func (e *eventWriter) writeUserInitiator() {
	e.field("initiated_by").object(func() {
		e.field("id").str(e.user.id)
		e.field("type").str("user")
		e.field("username").str(e.user.username)
	})
}

func (e *eventWriter) writeGeoIP() {
	place := places[e.rand.intn(len(places))]
	e.field("geoip").object(func() {
		e.field("country_code").str(place.countryCode)
		e.field("timezone").str(place.timezone)
		e.field("latitude").float(place.latitude)
		e.field("continent_code").str(place.continentCode)
		e.field("region_name").str(place.regionName)
		e.field("longitude").float(place.longitude)
		e.field("region_code").str(place.regionCode)
	})
}

func (e *eventWriter) writeUserAgent() {
	agent := userAgents[e.rand.intn(len(userAgents))]
	e.field("useragent").object(func() {
		for _, kv := range agent {
			e.field(kv[0]).str(kv[1])
		}
	})
}

func (e *eventWriter) writeClientIP() {
	// Documentation address ranges (RFC 5737): realistic, and nobody's real address.
	prefixes := []string{"192.0.2.", "198.51.100.", "203.0.113."}
	ip := prefixes[e.rand.intn(len(prefixes))] + strconv.Itoa(1+e.rand.intn(254))
	e.field("client_ip").str(ip)
}

func (e *eventWriter) writeSystem(host host) {
	e.field("system").object(func() {
		e.field("id").str(host.id)
		e.field("os").str(host.os)
		e.field("version").str(host.version)
		e.field("hostname").str(host.hostname)
		e.field("displayName").str(host.hostname)
	})
}

// Event types.

func writeAdminLogin(e *eventWriter) {
	e.writeAdminInitiator()
	e.writeGeoIP()
	e.writeUserAgent()
	e.field("mfa").boolean(e.success || e.rand.chance(0.5))
	e.field("provider").null()
	e.field("success").boolean(e.success)
	if !e.success {
		e.field("error_message").str(pick(&e.rand, "invalid credentials", "mfa verification failed", "account locked"))
	}
	e.writeClientIP()
	e.writeCommonTail()
}

func writeUserLogin(e *eventWriter) {
	e.writeUserInitiator()
	e.writeGeoIP()
	e.field("resource").object(func() {
		e.field("id").str(e.user.id)
		e.field("type").str("user")
		e.field("username").str(e.user.username)
	})
	e.writeUserAgent()
	e.field("auth_method").str(pick(&e.rand, "password", "password", "webauthn"))
	e.field("mfa").boolean(e.rand.chance(0.6))
	e.field("mfa_meta").object(func() { e.field("type").str(pick(&e.rand, "totp", "push", "none")) })
	e.field("provider").null()
	e.field("success").boolean(e.success)
	if !e.success {
		e.field("error_message").str(pick(&e.rand, "invalid credentials", "user suspended", "mfa verification failed"))
	}
	e.writeClientIP()
	e.writeCommonTail()
}

func writeSSOAuth(e *eventWriter) {
	apps := applications
	if e.success {
		apps = apps[:len(apps)-1] // only a failed login lacks its application
	}
	appIndex := e.rand.intn(len(apps))
	app := apps[appIndex]
	e.writeUserInitiator()
	if e.success {
		e.field("error_message").str("")
	} else {
		e.field("error_message").str(pick(&e.rand, "application unreachable", "not authorized", "user not assigned to application"))
	}
	e.writeGeoIP()
	e.field("sso_token_success").boolean(e.success)
	e.field("auth_context").object(func() {
		e.writeSystem(e.pickHost())
		e.field("auth_methods").object(func() {})
		if e.success {
			e.field("policies_applied").array(func() {
				e.object(func() {
					e.field("id").str("")
					e.field("name").str("Global Policy")
					e.field("metadata").object(func() {
						e.field("action").str("ALLOW")
						e.field("resource_type").str("APPLICATION")
					})
				})
			})
		}
	})
	e.writeUserAgent()
	e.field("mfa").boolean(e.rand.chance(0.3))
	e.field("application").object(func() {
		e.field("display_label").str(app.label)
		e.field("sso_type").str("saml")
		e.field("name").str(app.name)
		if app.name == "" {
			e.field("id").str("")
		} else {
			e.field("id").str(hex24(e.backlog.hash(saltApplication, appIndex)))
		}
		e.field("sso_url").str("https://sso.jumpcloud.com/saml2/" + app.name)
	})
	e.field("provider").str("")
	e.field("idp_initiated").boolean(e.rand.chance(0.2))
	e.writeClientIP()
	e.writeCommonTail()
}

func writeRadiusAuth(e *eventWriter) {
	var failure string
	if !e.success {
		failure = pick(&e.rand, "mschap: MS-CHAP2-Response is incorrect", "user not found", "mfa challenge timed out")
		e.field("error_message").str(failure)
	} else {
		e.field("error_message").null()
	}
	e.field("initiated_by").object(func() {
		e.field("type").str("user")
		e.field("username").str(e.user.username)
	})
	e.field("auth_type").str("eap")
	e.field("nas_mfa_state").str(pick(&e.rand, "DISABLED", "ENABLED"))
	e.writeGeoIP()
	e.field("eap_type").str("MSCHAPv2")
	e.field("outer").object(func() {
		if failure != "" {
			e.field("error_message").str("eap_peap: The users session was previously rejected: returning reject (again.), eap: Failed continuing EAP PEAP (25) session. EAP sub-module failed: " + failure)
		}
		e.field("eap_type").str("PEAP")
		e.field("username").str(e.user.username)
	})
	e.field("mfa").boolean(false)
	e.field("auth_meta").object(func() {
		e.field("user_password_enabled").boolean(true)
		e.field("device_cert_enabled").boolean(false)
		e.field("user_cert_enabled").boolean(false)
		e.field("auth_idp").str("JUMPCLOUD")
		e.field("userid_type").str("USERNAME")
	})
	e.field("success").boolean(e.success)
	e.writeClientIP()
	e.field("username").str(e.user.username)
	e.writeCommonTail()
}

func writeUserUpdate(e *eventWriter) {
	e.field("initiated_by").object(func() {
		scim := e.rand.chance(0.3)
		if scim {
			e.field("source").str("scim")
		}
		e.field("id").str(e.admin.id)
		e.field("type").str("admin")
		e.field("email").str(e.admin.email)
	})
	e.writeGeoIP()
	e.field("resource").object(func() {
		e.field("id").str(e.user.id)
		e.field("type").str("user")
		e.field("username").str(e.user.username)
	})
	e.writeUserAgent()
	e.field("changes").array(func() {
		// Two or three different changes, as one edit in the console or one SCIM push makes.
		count := 2 + e.rand.intn(2)
		first := e.rand.intn(len(userChanges))
		for k := range count {
			userChanges[(first+k)%len(userChanges)](e)
		}
	})
	e.field("auth_method").str(pick(&e.rand, "api key", "session"))
	e.field("correlation").object(func() {})
	e.field("success").boolean(true)
	e.field("provider").null()
	e.writeClientIP()
	e.field("message_chain").object(func() {})
	e.writeCommonTail()
}

// userChanges are the kinds of edit a user_update records. Their from/to values change JSON type
// from one change to the next, as real ones do, which is what breaks a search index's mapping.
var userChanges = []func(e *eventWriter){
	func(e *eventWriter) { e.change("company", "Acme", "Acme Corp") },
	func(e *eventWriter) { e.change("location", "Paris", pick(&e.rand, "Lyon", "Zürich", "Dublin")) },
	func(e *eventWriter) { e.change("state", "ACTIVATED", "SUSPENDED") },
	func(e *eventWriter) { e.change("suspended", false, true) },
	func(e *eventWriter) { e.change("password_expiration_days", 90, 180) },
	func(e *eventWriter) { e.change("displayname", e.user.displayName, e.user.displayName+" (contractor)") },
	func(e *eventWriter) {
		e.change("description", "", pick(&e.rand, "On leave 🌴", "Back from leave", "Équipe sécurité"))
	},
	func(e *eventWriter) {
		e.change("mfa", rawJSON(`{"configured":false,"exclusion":true}`), rawJSON(`{"configured":true,"exclusion":false}`))
	},
	func(e *eventWriter) {
		e.change("attributes",
			rawJSON(`[{"name":"Division","id":"`+e.objectIDNear(1)+`","value":"Marketing"}]`),
			rawJSON(`[{"name":"Division","id":"`+e.objectIDNear(2)+`","value":"Sales"}]`))
	},
	func(e *eventWriter) { e.change("manager", e.backlog.person(0).id, nil) },                          // only from: the value was removed
	func(e *eventWriter) { e.change("employeeIdentifier", nil, "E-"+strconv.Itoa(1000+e.index%9000)) }, // only to: first set
	func(e *eventWriter) { e.change("unix_uid", "5012", 5013) },
	func(e *eventWriter) {
		e.change("phoneNumbers", nil, rawJSON(`[{"type":"work","number":"+33 1 23 45 67 89"}]`))
	},
}

// rawJSON is a change value written as it is.
type rawJSON string

// change writes one {field, from, to} item. A nil from or to is left out, as JumpCloud does when
// a value is first set or removed.
func (e *eventWriter) change(field string, from, to any) {
	e.object(func() {
		e.field("field").str(field)
		if from != nil {
			e.field("from").value(from)
		}
		if to != nil {
			e.field("to").value(to)
		}
	})
}

func writeAssociationChange(e *eventWriter) {
	host := e.pickHost()
	op := pick(&e.rand, "add", "add", "remove")
	sudo := e.rand.chance(0.5)
	e.writeAdminInitiator()
	e.writeGeoIP()
	e.writeUserAgent()
	e.field("association").object(func() {
		e.field("op").str(op)
		e.field("action_source").str(pick(&e.rand, "manual", "manual", "group_sync"))
		e.field("connection").object(func() {
			e.field("from").object(func() {
				e.field("name").str(host.hostname)
				e.field("type").str("system")
				e.field("object_id").str(host.id)
			})
			e.field("to").object(func() {
				e.field("name").str(e.user.username)
				e.field("type").str("user")
				e.field("object_id").str(e.user.id)
			})
		})
		if sudo {
			e.field("attributes").value(rawJSON(`{"sudo":{"enabled":true,"withoutPassword":false}}`))
		} else {
			e.field("attributes").null()
		}
	})
	e.field("changes").array(func() {
		switch {
		case op == "remove":
			e.change("associated", true, false)
		case sudo:
			e.change("attributes", nil, rawJSON(`{"sudo":{"enabled":true,"withoutPassword":false}}`))
		default:
			e.change("associated", false, true)
		}
	})
	e.field("auth_method").str("session")
	e.field("provider").null()
	e.field("success").boolean(true)
	e.writeClientIP()
	e.writeCommonTail()
}

func writeSystemLogin(e *eventWriter) {
	host := e.pickHost()
	e.writeUserInitiator()
	e.writeSystem(host)
	e.field("resource").object(func() {
		e.field("id").str(host.id)
		e.field("type").str("system")
		e.field("hostname").str(host.hostname)
	})
	e.writeGeoIP()
	e.field("process_name").str(host.loginProcess)
	e.field("username").str(e.user.username)
	e.field("auth_method").str(pick(&e.rand, "password", "password", "device_certificate"))
	e.field("mfa").boolean(e.rand.chance(0.4))
	e.field("success").boolean(e.success)
	if e.success {
		e.field("message").str("User " + e.user.username + " logged in to " + host.hostname)
	} else {
		e.field("error_message").str(pick(&e.rand, "authentication failure", "account locked out"))
	}
	e.field("system_timestamp").str(e.timestamp.Add(-1234 * time.Microsecond).Format("2006-01-02T15:04:05.000Z"))
	e.writeClientIP()
	e.writeCommonTail()
}

func writeMDMCommand(e *eventWriter) {
	host := e.pickHost()
	command := pick(&e.rand, "DeviceLock", "InstallProfile", "RestartDevice", "EraseDevice")
	e.writeAdminInitiator()
	e.field("resource").object(func() {
		e.field("id").str(host.id)
		e.field("type").str("system")
		e.field("hostname").str(host.hostname)
	})
	e.writeSystem(host)
	e.field("command").object(func() {
		e.field("type").str(command)
		e.field("uuid").str(toUpper(hex(e.rand.next(), 16)))
		if e.success {
			e.field("status").str("Acknowledged")
		} else {
			e.field("status").str("Error")
			e.field("error_chain").array(func() {
				e.object(func() {
					e.field("error_code").integer(12021)
					e.field("error_domain").str("MCMDMErrorDomain")
					e.field("localized_description").str("The device is not enrolled in MDM.")
				})
			})
		}
	})
	e.field("success").boolean(e.success)
	if !e.success {
		e.field("error_message").str(command + " failed on " + host.hostname)
	}
	e.field("provider").null()
	e.writeClientIP()
	e.writeGeoIP()
	e.writeCommonTail()
}

// The people, places and machines events are about.

type person struct {
	id, username, email, displayName string
}

var people = []struct{ username, displayName string }{
	{"maurice.moss", "Maurice Moss"},
	{"roy.trenneman", "Roy Trenneman"},
	{"jen.barber", "Jen Barber"},
	{"john.doe", "John Doe"},
	{"jane.doe", "Jane Doe"},
	{"francois.lefevre", "François Lefèvre"},
	{"zoe.muller", "Zoë Müller"},
	{"lukasz.wojcik", "Łukasz Wójcik"},
	{"ana.nunez", "Ana Núñez"},
	{"bjorn.agren", "Björn Ågren"},
	{"priya.raman", "Priya Raman"},
	{"kenji.sato", "Kenji Sato"},
	{"amara.okafor", "Amara Okafor"},
	{"li.wei", "Li Wei"},
}

func (b Backlog) person(k int) person {
	p := people[k]
	return person{
		id:          hex24(b.hash(saltUser, k)),
		username:    p.username,
		email:       p.username + "@example.com",
		displayName: p.displayName,
	}
}

type host struct {
	id, hostname, os, version, loginProcess string
}

// pickHost picks the machine the event is about.
func (e *eventWriter) pickHost() host {
	k := e.rand.intn(len(hosts))
	h := hosts[k]
	h.id = hex24(e.backlog.hash(saltHost, k))
	return h
}

var hosts = []host{
	{"", "JDOE-LAPTOP", "Mac OS X", "14.4.1", "loginwindow"},
	{"", "MOSS-DESKTOP", "Windows", "11 Pro", "winlogon"},
	{"", "build-runner-03", "Ubuntu", "22.04", "sshd"},
	{"", "ZMULLER-MBP", "Mac OS X", "13.6", "loginwindow"},
	{"", "RECEPTION-PC", "Windows", "10 Professionnel", "winlogon"},
}

type place struct {
	countryCode, timezone, continentCode, regionName, regionCode string
	latitude, longitude                                          float64
}

var places = []place{
	{"FR", "Europe/Paris", "EU", "Île-de-France", "IDF", 48.8323, 2.4075},
	{"IE", "Europe/Dublin", "EU", "Leinster", "L", 53.3379, -6.2591},
	{"US", "America/New_York", "NA", "Massachusetts", "MA", 42.3364, -71.0326},
	{"AU", "Australia/Brisbane", "OC", "Queensland", "QLD", -27.658, 152.8915},
	{"DE", "Europe/Berlin", "EU", "Berlin", "BE", 52.5196, 13.4069},
	{"BR", "America/Sao_Paulo", "SA", "São Paulo", "SP", -23.5475, -46.6361},
	{"JP", "Asia/Tokyo", "AS", "Tokyo", "13", 35.6893, 139.6899},
}

var userAgents = [][][2]string{
	{{"os", "Mac OS X"}, {"minor", "0"}, {"os_minor", "15"}, {"os_version", "10.15.7"}, {"os_major", "10"}, {"version", "124.0.0.0"}, {"os_patch", "7"}, {"patch", "0"}, {"os_full", "Mac OS X 10.15.7"}, {"major", "124"}, {"name", "Chrome"}, {"os_name", "Mac OS X"}, {"device", "Mac"}},
	{{"os_full", "Mac OS X 10.15"}, {"minor", "0"}, {"os", "Mac OS X"}, {"major", "125"}, {"os_minor", "15"}, {"os_major", "10"}, {"os_version", "10.15"}, {"name", "Firefox"}, {"os_name", "Mac OS X"}, {"device", "Mac"}, {"version", "125.0"}},
	{{"os", "Windows"}, {"name", "Chrome"}, {"major", "123"}, {"minor", "0"}, {"patch", "0"}, {"device", "Other"}, {"os_full", "Windows 10"}, {"os_name", "Windows"}, {"version", "123.0.0.0"}, {"os_major", "10"}, {"os_version", "10"}},
	{{"os", "Windows"}, {"name", "Edge"}, {"major", "124"}, {"minor", "0"}, {"patch", "2478"}, {"device", "Other"}, {"os_full", "Windows 11"}, {"os_name", "Windows"}, {"version", "124.0.2478.51"}, {"os_major", "11"}, {"os_version", "11"}},
	{{"os", "iOS"}, {"name", "Mobile Safari"}, {"major", "17"}, {"minor", "4"}, {"device", "iPhone"}, {"os_full", "iOS 17.4.1"}, {"os_name", "iOS"}, {"version", "17.4"}, {"os_major", "17"}, {"os_minor", "4"}, {"os_version", "17.4.1"}},
	{{"patch", "0"}, {"os_full", "Other"}, {"minor", "68"}, {"major", "7"}, {"os", "Other"}, {"name", "curl"}, {"os_name", "Other"}, {"device", "Other"}, {"version", "7.68.0"}},
}

var applications = []struct{ name, label string }{
	{"google", "Google Workspace"},
	{"salesforce", "Salesforce"},
	{"zoom", "Zoom"},
	{"slack", "Slack"},
	{"calendar", "Team Calendar 📅"},
	{"", ""}, // an application JumpCloud could not resolve, as in failed logins
}

// Small helpers.

// randomStream is a SplitMix64 stream: fast, allocation-free and good enough for test data.
type randomStream struct{ state uint64 }

func (r *randomStream) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	return mix64(r.state)
}

func (r *randomStream) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *randomStream) chance(p float64) bool { return float64(r.next()>>11)/(1<<53) < p }

func pick(r *randomStream, choices ...string) string { return choices[r.intn(len(choices))] }

// hex writes the low digits*4 bits of v (digits ≤ 16) as lower-case hex, zero-padded.
func hex(v uint64, digits int) string {
	const alphabet = "0123456789abcdef"
	out := make([]byte, digits)
	for k := digits - 1; k >= 0; k-- {
		out[k] = alphabet[v&15]
		v >>= 4
	}
	return string(out)
}

// hex24 is a 24-hex-digit id drawn from v.
func hex24(v uint64) string { return hex(mix64(v), 8) + hex(v, 16) }

func toUpper(s string) string {
	out := []byte(s)
	for k, c := range out {
		if 'a' <= c && c <= 'z' {
			out[k] = c - 'a' + 'A'
		}
	}
	return string(out)
}

// jsonWriter appends one minified JSON value to buf. Events are written field by field rather than
// through encoding/json so that building one costs about a microsecond, which keeps paging through
// a backlog of millions quick, and so that field order can follow the real events'.
type jsonWriter struct {
	buf       []byte
	needComma bool
}

func (j *jsonWriter) separate() {
	if j.needComma {
		j.buf = append(j.buf, ',')
	}
	j.needComma = true
}

// field writes an object member's name; the value written next belongs to it.
func (j *jsonWriter) field(name string) *jsonWriter {
	j.separate()
	j.buf = appendQuoted(j.buf, name)
	j.buf = append(j.buf, ':')
	j.needComma = false
	return j
}

func (j *jsonWriter) str(v string) { j.separate(); j.buf = appendQuoted(j.buf, v) }

func (j *jsonWriter) integer(v int64) { j.separate(); j.buf = strconv.AppendInt(j.buf, v, 10) }

func (j *jsonWriter) float(v float64) {
	j.separate()
	j.buf = strconv.AppendFloat(j.buf, v, 'f', -1, 64)
}

func (j *jsonWriter) boolean(v bool) { j.separate(); j.buf = strconv.AppendBool(j.buf, v) }

func (j *jsonWriter) null() { j.separate(); j.buf = append(j.buf, "null"...) }

func (j *jsonWriter) object(members func()) { j.nest('{', '}', members) }

func (j *jsonWriter) array(elements func()) { j.nest('[', ']', elements) }

func (j *jsonWriter) nest(open, close byte, fill func()) {
	j.separate()
	j.buf = append(j.buf, open)
	j.needComma = false
	fill()
	j.buf = append(j.buf, close)
	j.needComma = true
}

// value writes a string, bool, int or rawJSON.
func (j *jsonWriter) value(v any) {
	switch v := v.(type) {
	case string:
		j.str(v)
	case bool:
		j.boolean(v)
	case int:
		j.integer(int64(v))
	case rawJSON:
		j.separate()
		j.buf = append(j.buf, v...)
	default:
		panic("emulator: no JSON form for a change value of this type")
	}
}

// appendQuoted appends s as a JSON string, leaving non-ASCII UTF-8 as it is, as the API does.
func appendQuoted(buf []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	for k := 0; k < len(s); k++ {
		switch c := s[k]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
