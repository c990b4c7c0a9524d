"""Tables of the deliverability routes: suppressed domains, send canaries, validation feedback."""
