-- Vault version 4: browser enrollments waiting for their redirect.
--
-- `enroll KEY` writes one row when it prints the authorize URL; whoever
-- catches the redirect (the command's own listener, a pasted URL, or the
-- running daemon's callback_listen, which is another process) takes the row
-- out in the same statement that reads it, so a state is good for one
-- redirect only. The state itself is not stored: only its SHA-256, which is
-- enough to find the row and useless to an attacker who reads the file.
-- A row lives 10 minutes (expires_at); expired rows are purged on the next
-- enroll and at each lookup.
CREATE TABLE pending_enrollment (
    state_hash     TEXT PRIMARY KEY,  -- hex SHA-256 of the OAuth state
    patient_key    TEXT NOT NULL,
    ehr            TEXT NOT NULL,
    code_verifier  BLOB NOT NULL,     -- PKCE verifier (RFC 7636), sealed like the tokens (0003)
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,     -- as requested, to report what was not granted
    token_endpoint TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,  -- unix seconds
    token_key_id   TEXT NOT NULL      -- the key that sealed code_verifier
) WITHOUT ROWID;
