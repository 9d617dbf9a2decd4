"""xlsr_live.client: native-protocol client library (stream.recognize) and `xlsr-live client` (cli)."""
