"""The local control socket: a unix socket whose peers are identified by SO_PEERCRED and mapped to roles."""
