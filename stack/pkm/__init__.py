"""PKMv3 control messages (declarative codec), EAP / EAP-PSK and the authenticator interface.

* :mod:`stack.pkm.messages` — ``decode(data)``, ``requires_cmac(msg)`` and one frozen dataclass
  per message (``AkTransfer(...).encode()``).
* :mod:`stack.pkm.eap` — RFC 3748 packet codec; :mod:`stack.pkm.eap_psk` — EAP-PSK (RFC 4764)
  peer and server as sans-I/O objects producing the 64-byte MSK.
* :mod:`stack.pkm.authenticator` — ``Authenticator`` interface and ``BuiltinAuthenticator``.
"""
