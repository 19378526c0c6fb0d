//! Post-quantum cryptography: ML-KEM (FIPS 203), ML-DSA (FIPS 204) and the vault envelope.
