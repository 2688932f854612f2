"""Models: the one loader (loading), what differs between transformers families (families), the encoder interface
and its implementations (encoders), images -> vectors (embedding) and the dense-feature variants (dense)."""
