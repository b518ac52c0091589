//! The admin web (key installation form, JSON API). Not built yet: see the admin-web issue.
