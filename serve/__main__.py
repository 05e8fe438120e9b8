from serve.cli import app

app(prog_name="skbandit")
