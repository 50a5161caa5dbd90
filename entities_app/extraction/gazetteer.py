"""The curated lists the rule-based extractor looks names up in: common technologies,
well-known organisations and products, places, first names, business metrics and events.

One entry a line. A name prefixed with ``=`` is matched with its case as written only (it
is also an English word, "Go", "Swift", "Notion"); any other name also matches in any case
("postgres", "NPM"). Names of one or two characters always match case-sensitively."""

TECHNOLOGY = """
Python
Java
JavaScript
TypeScript
=Go
Golang
=Rust
=Ruby
=Swift
Kotlin
=Scala
Elixir
Erlang
Haskell
Clojure
PHP
=Perl
=R
=C
C++
C#
F#
=Dart
Lua
=Julia
Objective-C
Zig
Nim
OCaml
Fortran
COBOL
=Bash
PowerShell
SQL
PL/pgSQL
GraphQL
REST
gRPC
protobuf
Protocol Buffers
JSON
YAML
TOML
XML
HTML
CSS
Sass
HTTP
HTTP/2
HTTP/3
HTTPS
TCP
UDP
WebSocket
websocket
WebRTC
OAuth
OAuth2
OAuth 2.0
OpenID Connect
OIDC
SAML
JWT
PKCE
RS256
TLS
SSL
mTLS
SSH
DNS
VPN
CSV
Parquet
Avro
PDF
Markdown
WebAssembly
Wasm
Django
Django REST Framework
DRF
=Flask
FastAPI
Starlette
Pydantic
SQLAlchemy
Alembic
=Celery
=Dramatiq
asyncio
aiohttp
httpx
urllib3
botocore
boto3
pandas
NumPy
SciPy
Polars
scikit-learn
PyTorch
TensorFlow
=Keras
JAX
Hugging Face Transformers
transformers
sentence-transformers
spaCy
NLTK
LangChain
LlamaIndex
Jupyter
pytest
pytest-django
unittest
tox
nox
mypy
pyright
ruff
flake8
isort
=black
pylint
pip
pipx
uv
=Poetry
pyenv
virtualenv
conda
Gunicorn
uvicorn
Node.js
=Node
=Deno
=Bun
npm
pnpm
Yarn
=React
React Native
Next.js
=Remix
Gatsby
=Vue
Vue.js
Nuxt
=Angular
AngularJS
=Svelte
SvelteKit
SolidJS
=Ember.js
jQuery
Redux
Pinia
RxJS
Tailwind
Tailwind CSS
=Bootstrap
Material UI
MkDocs
Material for MkDocs
=Storybook
webpack
Vite
esbuild
=Rollup
=Babel
=Parcel
Turborepo
=Nx
Lerna
ESLint
=Prettier
=Jest
Vitest
=Mocha
=Cypress
Playwright
Puppeteer
Selenium
=Express
Express.js
NestJS
Fastify
=Koa
=Spring
Spring Boot
Hibernate
Maven
Gradle
JUnit
Quarkus
Micronaut
Ruby on Rails
=Rails
Sinatra
Sidekiq
RSpec
Laravel
Symfony
=Composer
ASP.NET
.NET
Entity Framework
=Phoenix
Phoenix LiveView
LiveView
=Ecto
Flutter
SwiftUI
UIKit
Jetpack Compose
Xcode
Android Studio
Android
iOS
iPadOS
macOS
=Windows
Linux
Ubuntu
Debian
Alpine
CentOS
RHEL
Fedora
PostgreSQL
Postgres
pgvector
PostGIS
TimescaleDB
MySQL
MariaDB
SQLite
=Oracle Database
SQL Server
MongoDB
Redis
Valkey
Memcached
Cassandra
ScyllaDB
DynamoDB
CockroachDB
Neo4j
Elasticsearch
OpenSearch
=Solr
Lucene
Meilisearch
Typesense
ClickHouse
DuckDB
=Snowflake
BigQuery
Redshift
Databricks
Apache Spark
=Spark
=Hadoop
=Hive
=Presto
=Trino
=Iceberg
Delta Lake
dbt
=Airflow
Apache Airflow
Dagster
Prefect
Fivetran
Airbyte
Kafka
Apache Kafka
RabbitMQ
NATS
NATS JetStream
JetStream
ActiveMQ
ZeroMQ
=Pulsar
Amazon SQS
SQS
SNS
Kinesis
=Pinecone
=Weaviate
Qdrant
=Milvus
=Chroma
FAISS
HNSW
Docker
Docker Compose
docker-compose
Podman
Kubernetes
k8s
Helm
Kustomize
Argo CD
ArgoCD
Istio
=Linkerd
=Envoy
Nginx
Apache HTTP Server
HAProxy
=Traefik
=Caddy
Terraform
OpenTofu
Pulumi
Ansible
=Chef
=Puppet
Packer
Vagrant
HashiCorp Vault
=Vault
=Consul
=Nomad
AWS
Amazon Web Services
Amazon S3
S3
EC2
ECS
EKS
Fargate
AWS Lambda
=Lambda
RDS
=Aurora
CloudFront
CloudWatch
CloudFormation
AWS KMS
KMS
IAM
Route 53
API Gateway
Step Functions
Azure
Microsoft Azure
Azure DevOps
GCP
Google Cloud
Google Cloud Platform
GKE
Cloud Run
Cloud Functions
Firebase
Firestore
Supabase
=Heroku
Vercel
Netlify
Fly.io
=Render
Cloudflare
Cloudflare Workers
MinIO
=Ceph
Git
GitHub
GitHub Actions
GitHub Pages
GitLab
GitLab CI
Bitbucket
Jenkins
CircleCI
Travis CI
Buildkite
Dependabot
Renovate
SonarQube
=Sentry
Datadog
New Relic
Prometheus
=Grafana
=Loki
=Tempo
Jaeger
OpenTelemetry
Kibana
Logstash
Splunk
PagerDuty
Opsgenie
Honeycomb
Jira
Confluence
Postman
Swagger
OpenAPI
VS Code
Visual Studio Code
IntelliJ
PyCharm
Vim
Neovim
Emacs
cron
systemd
pg_dump
psql
curl
libxml2
OpenSSL
FFmpeg
ImageMagick
=Chromium
=Chrome
=Firefox
=Safari
=Edge
=Electron
=Tauri
=Unity
Unreal Engine
Stripe API
Twilio API
Mailgun
SendGrid
Postmark
Auth0
=Okta
Keycloak
OpenAI API
GPT-4
GPT-4o
gpt-4o
GPT-3.5
o1
=Claude
Claude 3.5 Sonnet
Claude 3 Opus
=Llama
Llama 3
=Mistral
=Gemini
Ollama
vLLM
k6
Locust
JMeter
Gatling
Kubeflow
MLflow
=Ray
CUDA
"""

ORGANIZATION = """
Google
Alphabet
Microsoft
=Apple
=Amazon
=Meta
Facebook
Netflix
IBM
=Oracle
Intel
AMD
NVIDIA
Nvidia
Samsung
Sony
Tesla
SpaceX
OpenAI
Anthropic
Mistral AI
Hugging Face
DeepMind
=Cohere
Stripe
Shopify
Salesforce
SAP
Adobe
Atlassian
GitHub Inc
HashiCorp
=Elastic
Confluent
MongoDB Inc
Databricks Inc
Cloudera
Red Hat
=Canonical
Mozilla
Twilio
Spotify
Uber
Lyft
Airbnb
DoorDash
Instacart
Booking.com
Expedia
Zalando
Klarna
Revolut
Monzo
N26
=Wise
PayPal
=Square
=Block
=Visa
Mastercard
American Express
JPMorgan
JPMorgan Chase
Goldman Sachs
Morgan Stanley
Deutsche Bank
HSBC
Barclays
BNP Paribas
UBS
Credit Suisse
Santander
ING
Siemens
Bosch
SAP SE
Volkswagen
BMW
Mercedes-Benz
Toyota
Honda
Nestlé
Unilever
Procter & Gamble
Coca-Cola
PepsiCo
Walmart
=Target
Costco
IKEA
Accenture
Deloitte
PwC
KPMG
EY
McKinsey
Boston Consulting Group
=Bain
Infosys
Wipro
Tata Consultancy Services
Capgemini
Hetzner
DigitalOcean
Linode
Akamai
Fastly
OVHcloud
Scaleway
Vercel Inc
Automattic
Canva
Figma Inc
Dropbox
=Box
Zoom Video Communications
Slack Technologies
LinkedIn
Twitter
X Corp
Reddit
Pinterest
=Snap
TikTok
ByteDance
Tencent
Alibaba
Baidu
Huawei
Xiaomi
Yandex
Rakuten
Mercado Libre
Y Combinator
Sequoia
Sequoia Capital
Andreessen Horowitz
a16z
=Accel
Index Ventures
Linux Foundation
Apache Software Foundation
Python Software Foundation
CNCF
W3C
IETF
European Commission
European Union
United Nations
World Bank
IMF
MIT
Stanford
Stanford University
Harvard
Harvard University
Oxford
University of Oxford
Cambridge University
ETH Zurich
Carnegie Mellon
UC Berkeley
"""

PRODUCT = """
Slack
=Notion
Confluence Cloud
Trello
Asana
Monday.com
ClickUp
=Linear
Basecamp
Airtable
Figma
=Sketch
=Miro
Canva
=Zoom
Microsoft Teams
Google Meet
Google Drive
Google Docs
Google Sheets
Gmail
Google Analytics
Google Workspace
Microsoft 365
Office 365
=Outlook
=Excel
PowerPoint
=Word
SharePoint
OneDrive
Dropbox Paper
Salesforce CRM
Sales Cloud
HubSpot
Pipedrive
Zendesk
Intercom
Freshdesk
Help Scout
=Front
Mailchimp
Marketo
=Segment
Amplitude
Mixpanel
=Heap
Hotjar
FullStory
Looker
Tableau
Power BI
Metabase
Superset
QuickBooks
=Xero
NetSuite
=Gusto
Rippling
Workday
BambooHR
DocuSign
Calendly
=Loom
1Password
LastPass
Bitwarden
Okta Workforce Identity
Zapier
=Make
IFTTT
AppExchange
Contentful
=Sanity
Strapi
WordPress
Webflow
Squarespace
=Wix
Shopify Plus
Magento
WooCommerce
ChatGPT
=Copilot
GitHub Copilot
=Cursor
iPhone
iPad
MacBook
MacBook Pro
Apple Watch
=Pixel
=Galaxy
=Kindle
=Alexa
PlayStation
Xbox
A100
H100
Starter plan
Pro plan
Team plan
Business plan
Enterprise plan
Free plan
Free tier
"""

LOCATION = """
London
Paris
Berlin
Munich
Frankfurt
Hamburg
Cologne
Vienna
Zurich
Geneva
Amsterdam
Rotterdam
Brussels
Antwerp
Luxembourg
Madrid
Barcelona
Valencia
Lisbon
Porto
Rome
Milan
Turin
Naples
Athens
Istanbul
Warsaw
Krakow
Prague
Budapest
Bucharest
Sofia
Belgrade
Zagreb
Ljubljana
Copenhagen
Stockholm
Oslo
Helsinki
Reykjavik
Dublin
Edinburgh
Manchester
Glasgow
Bristol
Kyiv
Tallinn
Riga
Vilnius
Moscow
New York
New York City
NYC
San Francisco
Los Angeles
Seattle
Portland
Austin
Dallas
Houston
Chicago
Boston
Miami
Atlanta
Denver
Washington
Washington DC
Toronto
Vancouver
Montreal
Mexico City
São Paulo
Sao Paulo
Rio de Janeiro
Buenos Aires
Santiago
Bogotá
Lima
Tokyo
Osaka
Kyoto
Seoul
Beijing
Shanghai
Shenzhen
Hong Kong
Taipei
Singapore
Bangkok
Jakarta
Manila
Kuala Lumpur
Ho Chi Minh City
Hanoi
Bangalore
Bengaluru
Mumbai
Delhi
New Delhi
Hyderabad
Pune
Chennai
Dubai
Abu Dhabi
Doha
Riyadh
Tel Aviv
Cairo
Lagos
Nairobi
Cape Town
Johannesburg
Sydney
Melbourne
Brisbane
Perth
Auckland
Wellington
Germany
France
Spain
Portugal
Italy
Greece
Austria
Switzerland
Netherlands
Belgium
Denmark
Sweden
Norway
Finland
Iceland
Ireland
United Kingdom
UK
England
Scotland
Wales
Poland
Czech Republic
Czechia
Hungary
Romania
Bulgaria
Croatia
Serbia
Ukraine
Turkey
Russia
United States
USA
Canada
Mexico
Brazil
Argentina
Chile
Colombia
Peru
Japan
China
India
South Korea
Korea
Taiwan
Vietnam
Thailand
Indonesia
Philippines
Malaysia
Australia
New Zealand
Israel
Egypt
Nigeria
Kenya
South Africa
Europe
Asia
Africa
North America
South America
Latin America
APAC
EMEA
LATAM
Bay Area
Silicon Valley
California
Texas
New York State
Bavaria
Catalonia
Ontario
Quebec
"""

METRIC = """
MRR
ARR
NPS
CSAT
CAC
CAC payback
LTV
LTV/CAC
DAU
MAU
WAU
daily active users
monthly active users
weekly active users
churn
churn rate
retention
retention rate
conversion rate
drop-off
bounce rate
uptime
error rate
p50
p90
p95
p99
cold start
build time
test coverage
code coverage
coverage
time to first response
gross margin
burn rate
runway
"""

EVENT = """
Black Friday
Cyber Monday
Christmas
Thanksgiving
New Year
Easter
Ramadan
Diwali
KubeCon
KubeCon Europe
KubeCon North America
re:Invent
AWS re:Invent
Google I/O
WWDC
PyCon
PyCon US
EuroPython
DjangoCon
JSConf
NodeConf
RailsConf
FOSDEM
Web Summit
CES
SaaStr
Dreamforce
Series A
Series B
Series C
Series D
seed round
IPO
hackathon
all-hands
"""

DOCUMENT = """
MSA
NDA
DPA
SOW
SLA
RFC
PRD
data processing agreement
master services agreement
statement of work
SOC 2
SOC 2 Type II
SOC 2 Type I
ISO 27001
README
CHANGELOG
"""

CONCEPT = """
SSO
HIPAA
GDPR
CCPA
PCI DSS
event sourcing
CQRS
microservices
feature flags
rate limiting
rate limits
zero-downtime deployment
blue-green deployment
canary release
dependency injection
domain-driven design
test-driven development
continuous integration
continuous delivery
infrastructure as code
failover
sharding
"""

# First names of many languages: the first word of a capitalised span found here makes it
# a person ("Maria Lopez", "Priya"). Ambiguous ones that are also common words are left out.
FIRST_NAMES = """
Aaron Abby Abdul Abigail Adam Adrian Adriana Agnes Ahmed Ahmad Aidan Aiko Aisha Akira Alan
Albert Alberto Alejandro Aleksandr Alessandro Alex Alexa Alexander Alexandra Alexandre Alexei
Alfonso Alfred Ali Alice Alicia Alina Alison Amanda Amara Amber Amelia Amir Amit Amy Ana
Anan Anders Andre Andrea Andreas Andrei Andrew Andy Angela Angelo Anil Anita Anja Ankit Ann
Anna Anne Annika Anton Antonio Anya Arash Arjun Arnav Arne Arthur Arturo Arun Asha Ashley
Astrid Aurora Ava Ayesha Ayumi Barbara Beatriz Ben Benjamin Bernard Bernd Beth Bianca Bilal
Bjorn Björn Bob Boris Brad Bradley Brandon Brenda Brian Bruno Bryan Caitlin Camila Camille
Carl Carla Carlos Carmen Carol Caroline Carolina Casey Catherine Cecilia Celine Chandra
Charles Charlie Charlotte Chen Chiara Chidi Chinedu Chloe Chris Christian Christina
Christine Christoph Christopher Claire Clara Claudia Colin Connor Craig Cristina Dan Dana
Daniel Daniela Danielle Daria Dario David Deborah Deepak Denis Dennis Derek Diana Diego
Dimitri Dmitri Dmitry Dominic Dominik Donald Doug Douglas Duc Dylan Ed Eduardo Edward
Elena Eli Elias Elif Elijah Elizabeth Ella Ellen Emeka Emil Emilia Emily Emma Enrique Eric
Erik Erin Ethan Eva Evan Eve Fabian Fabio Farah Fatima Felipe Felix Fernando Filip Fiona
Florian Francesca Francesco Francisco Frank Franz Freya Gabriel Gabriela Gabriele Gareth Gary
Gaurav George Georg Gerhard Giovanni Giulia Giuseppe Grace Greg Gregory Guillaume Gustavo
Hamza Hana Hannah Hans Haruto Hassan Heather Hector Heidi Helen Helena Henrik Henry Hiroshi
Hugo Hyun Ian Ibrahim Igor Ilya Imran Ingrid Irene Isaac Isabel Isabella Isabelle Ivan Jack
Jacob Jake James Jamie Jan Jana Jane Janet Jasmine Jason Javier Jay Jean Jeff Jennifer Jens
Jeremy Jerome Jess Jessica Jiho Jin Joan Joanna Joao João Joe Johan Johann Johannes John
Jonas Jonathan Jordan Jorge Jose José Joseph Josh Joshua Juan Judith Julia Julian Julie
Julien Jun Jurgen Jürgen Justin Kai Karen Karim Karin Karl Kate Katarina Katherine Kathleen
Katie Kavya Keith Kelly Ken Kenji Kevin Khalid Kim Kimberly Klaus Kofi Krishna Kumar Kyle
Lakshmi Lara Lars Laura Lauren Laurent Layla Leah Lena Leo Leon Leonardo Lewis Li Liam
Lily Lin Linda Lisa Liu Lorenzo Louis Louise Luca Lucas Lucia Lucy Luis Luisa Lukas Luke
Magnus Mahmoud Maja Manuel Marc Marco Marcus Margaret Maria Mariana Marie Marina Mario Mark
Marta Martin Martina Mary Mateo Matt Matteo Matthew Matthias Max Maxim Maya Mei Mehmet Mei
Melissa Mia Michael Michelle Miguel Mika Mike Mikhail Milan Min Ming Miriam Mohamed Mohammad
Mohammed Monica Morgan Muhammad Nadia Nancy Naomi Natalia Natalie Nathan Neha Nicholas Nick
Nicola Nicolas Nicole Niels Nikhil Nikita Nikolai Nils Nina Noah Nora Nour Oleg Olga Oliver
Olivia Omar Oscar Pablo Paolo Patricia Patrick Paul Paula Pavel Pedro Peter Petra Philip
Philipp Pierre Pietro Pooja Priya Rachel Rafael Rahul Raj Rajesh Ramon Raphael Ravi Rebecca
Reza Ricardo Richard Rick Rita Rob Robert Roberto Robin Rohan Roman Ronald Rosa Ruby Rui
Ruth Ryan Saad Sabrina Sadia Sakura Sally Salma Sam Samantha Samir Samuel Sandra Sanjay
Sara Sarah Sasha Scott Sean Sebastian Sergei Sergey Sergio Seo Shawn Shreya Simon Simone
Sofia Sophia Sophie Stefan Stefano Stephanie Stephen Steve Steven Sunil Susan Sven Takashi
Tanya Tara Teresa Thomas Tim Timothy Tobias Todd Tom Tomas Tomás Tony Tyler Uma Usman
Valentina Valeria Vanessa Victor Victoria Vijay Vikram Vincent Viktor Vivek Wei Wendy
William Wolfgang Xavier Xin Yan Yara Yasmin Yuki Yusuf Yuri Zach Zainab Zara Zhang Zoe Zoë
Bruce Clark Diana Fatma Jiwoo Kwame Lucia Mateus Noura Olu Rania Santiago Thiago Wanjiru
"""
