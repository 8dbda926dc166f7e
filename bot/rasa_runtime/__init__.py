"""What runs inside Rasa's and the Rasa SDK's processes (the gateway channel, the redacting tracker store, the private
action server and Rasa's launcher), and how our own clients reach them (api.py, standard library only: the gateway
imports it)."""
