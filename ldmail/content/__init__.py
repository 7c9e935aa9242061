"""What a message says and looks like: templates rendered to HTML and text, the MIME
message built from them, previews, the gallery, and `validate`, which renders them all."""
