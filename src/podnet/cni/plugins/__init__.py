"""The plugins, one module each, as pure-as-possible functions of a CniRequest."""
