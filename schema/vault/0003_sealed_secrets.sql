-- Vault version 3: secrets sealed at rest (AES-256-GCM, lib/store/token_key.hpp).
--
-- enrollment.refresh_token and secret.value now hold sealed boxes
-- (format byte, 96-bit nonce, ciphertext, tag) instead of plain bytes. The
-- associated data binds each box to its row (patient key and EHR, or the
-- secret's name), so a box copied onto another row does not open.
-- token_key_id names the key that sealed the row (a fingerprint, never the
-- key), so a wrong key is refused at start-up before anything is written,
-- and `headachemd-sync rekey` can tell what it has re-sealed.
--
-- The daemon seals every plain-text row of version 2 in this migration's
-- own transaction (lib/store/src/vault.cpp), so an existing deployment keeps
-- its tokens. From version 3 on a row without a key id is refused as tampered.
ALTER TABLE enrollment ADD COLUMN token_key_id TEXT;
ALTER TABLE secret ADD COLUMN token_key_id TEXT;
