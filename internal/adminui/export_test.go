package adminui

// Internals for the fuzz tests.

var UnmarshalArgs = unmarshalArgs

func (a *Admin) ValidSession(id string) bool { return a.validSession(id, timeNow()) }

func (a *Admin) NewSession() string { return a.newSession(timeNow()) }
