"""Account links: which provider account a chat user acts as (SPEC §20 "Who acts")."""
