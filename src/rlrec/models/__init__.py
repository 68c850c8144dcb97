"""Neural networks: sequential state encoders and the Q/CE heads on top of them."""
