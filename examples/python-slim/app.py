from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello from a slim Python image built by minibuild!"


if __name__ == "__main__":
    print("Hello from a slim Python image built by minibuild!")
    app.run(host="0.0.0.0", port=8000)
