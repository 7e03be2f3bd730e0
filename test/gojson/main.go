// Command gojson is the reference decoder for userns-guard's differential
// tests. It decodes Docker Engine API request bodies the way Docker Engine
// 20.10 does (encoding/json, first JSON value only, into a wrapper shaped like
// moby's runconfig.ContainerConfigWrapper) and reports the effective
// HostConfig that the engine would act on.
//
// Protocol: every stdin line is the standard base64 encoding of one request
// body; for every line exactly one JSON line is written to stdout (and
// flushed):
//
//	{"ok":true,"usernsMode":"...", ...}   body decoded
//	{"ok":false,"error":"..."}            json.Decoder.Decode returned an error
//	{"ok":false,"error":"...","harnessError":true}
//	                                      the line itself was unusable (bad
//	                                      base64) or the decoder panicked
//
// Flags:
//
//	-start  decode as the legacy POST /containers/{id}/start body
//	        (runconfig.decodeHostConfig) instead of POST /containers/create
//	        (runconfig.decodeContainerConfig).
//
// Only the decoding step is reproduced. The engine's later validation
// (validateNetMode and friends) is deliberately not.
//
// The types below are written for this program. Their shape, field names,
// JSON tags, Go types and the one custom unmarshaller (StrSlice) follow the
// Docker Engine 20.10 API types, because any difference (a missing field,
// another type) would change which bodies decode with an error.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// StrSlice decodes from a JSON array of strings or from a single string
// (behaviour of moby's api/types/strslice).
type StrSlice []string

// UnmarshalJSON accepts a string array or a plain string.
func (s *StrSlice) UnmarshalJSON(raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	list := make([]string, 0, 1)
	if err := json.Unmarshal(raw, &list); err != nil {
		var one string
		if err := json.Unmarshal(raw, &one); err != nil {
			return err
		}
		list = append(list, one)
	}
	*s = list
	return nil
}

// Port is a "port/proto" string (go-connections nat.Port).
type Port string

// PortBinding is one host binding of a container port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

// HealthConfig is the container health check.
type HealthConfig struct {
	Test        []string      `json:",omitempty"`
	Interval    time.Duration `json:",omitempty"`
	Timeout     time.Duration `json:",omitempty"`
	StartPeriod time.Duration `json:",omitempty"`
	Retries     int           `json:",omitempty"`
}

// Config is the portable part of a container's configuration.
type Config struct {
	Hostname        string
	Domainname      string
	User            string
	AttachStdin     bool
	AttachStdout    bool
	AttachStderr    bool
	ExposedPorts    map[Port]struct{} `json:",omitempty"`
	Tty             bool
	OpenStdin       bool
	StdinOnce       bool
	Env             []string
	Cmd             StrSlice
	Healthcheck     *HealthConfig `json:",omitempty"`
	ArgsEscaped     bool          `json:",omitempty"`
	Image           string
	Volumes         map[string]struct{}
	WorkingDir      string
	Entrypoint      StrSlice
	NetworkDisabled bool   `json:",omitempty"`
	MacAddress      string `json:",omitempty"`
	OnBuild         []string
	Labels          map[string]string
	StopSignal      string   `json:",omitempty"`
	StopTimeout     *int     `json:",omitempty"`
	Shell           StrSlice `json:",omitempty"`
}

// Namespace and mode string types of HostConfig.
type (
	NetworkMode  string
	UsernsMode   string
	PidMode      string
	IpcMode      string
	UTSMode      string
	CgroupnsMode string
	CgroupSpec   string
	Isolation    string
	MountType    string
)

// LogConfig selects the logging driver.
type LogConfig struct {
	Type   string
	Config map[string]string
}

// RestartPolicy is the container restart policy.
type RestartPolicy struct {
	Name              string
	MaximumRetryCount int
}

// DeviceMapping maps a host device into the container.
type DeviceMapping struct {
	PathOnHost        string
	PathInContainer   string
	CgroupPermissions string
}

// DeviceRequest asks a device driver for devices.
type DeviceRequest struct {
	Driver       string
	Count        int
	DeviceIDs    []string
	Capabilities [][]string
	Options      map[string]string
}

// WeightDevice is a blkio weight for one device.
type WeightDevice struct {
	Path   string
	Weight uint16
}

// ThrottleDevice is a blkio rate limit for one device.
type ThrottleDevice struct {
	Path string
	Rate uint64
}

// Ulimit is one rlimit setting (go-units).
type Ulimit struct {
	Name string
	Hard int64
	Soft int64
}

// Resources are the cgroup resource settings, embedded in HostConfig.
type Resources struct {
	CPUShares            int64 `json:"CpuShares"`
	Memory               int64
	NanoCPUs             int64 `json:"NanoCpus"`
	CgroupParent         string
	BlkioWeight          uint16
	BlkioWeightDevice    []*WeightDevice
	BlkioDeviceReadBps   []*ThrottleDevice
	BlkioDeviceWriteBps  []*ThrottleDevice
	BlkioDeviceReadIOps  []*ThrottleDevice
	BlkioDeviceWriteIOps []*ThrottleDevice
	CPUPeriod            int64 `json:"CpuPeriod"`
	CPUQuota             int64 `json:"CpuQuota"`
	CPURealtimePeriod    int64 `json:"CpuRealtimePeriod"`
	CPURealtimeRuntime   int64 `json:"CpuRealtimeRuntime"`
	CpusetCpus           string
	CpusetMems           string
	Devices              []DeviceMapping
	DeviceCgroupRules    []string
	DeviceRequests       []DeviceRequest
	KernelMemory         int64
	KernelMemoryTCP      int64
	MemoryReservation    int64
	MemorySwap           int64
	MemorySwappiness     *int64
	OomKillDisable       *bool
	PidsLimit            *int64
	Ulimits              []*Ulimit
	CPUCount             int64 `json:"CpuCount"`
	CPUPercent           int64 `json:"CpuPercent"`
	IOMaximumIOps        uint64
	IOMaximumBandwidth   uint64
}

// BindOptions are options for bind mounts.
type BindOptions struct {
	Propagation  string `json:",omitempty"`
	NonRecursive bool   `json:",omitempty"`
}

// MountDriver names a volume driver and its options.
type MountDriver struct {
	Name    string            `json:",omitempty"`
	Options map[string]string `json:",omitempty"`
}

// VolumeOptions are options for volume mounts.
type VolumeOptions struct {
	NoCopy       bool              `json:",omitempty"`
	Labels       map[string]string `json:",omitempty"`
	DriverConfig *MountDriver      `json:",omitempty"`
}

// TmpfsOptions are options for tmpfs mounts.
type TmpfsOptions struct {
	SizeBytes int64       `json:",omitempty"`
	Mode      os.FileMode `json:",omitempty"`
}

// Mount is one entry of HostConfig.Mounts.
type Mount struct {
	Type          MountType      `json:",omitempty"`
	Source        string         `json:",omitempty"`
	Target        string         `json:",omitempty"`
	ReadOnly      bool           `json:",omitempty"`
	Consistency   string         `json:",omitempty"`
	BindOptions   *BindOptions   `json:",omitempty"`
	VolumeOptions *VolumeOptions `json:",omitempty"`
	TmpfsOptions  *TmpfsOptions  `json:",omitempty"`
}

// HostConfig is the non-portable part of a container's configuration.
type HostConfig struct {
	Binds           []string
	ContainerIDFile string
	LogConfig       LogConfig
	NetworkMode     NetworkMode
	PortBindings    map[Port][]PortBinding
	RestartPolicy   RestartPolicy
	AutoRemove      bool
	VolumeDriver    string
	VolumesFrom     []string
	CapAdd          StrSlice
	CapDrop         StrSlice
	CgroupnsMode    CgroupnsMode
	DNS             []string `json:"Dns"`
	DNSOptions      []string `json:"DnsOptions"`
	DNSSearch       []string `json:"DnsSearch"`
	ExtraHosts      []string
	GroupAdd        []string
	IpcMode         IpcMode
	Cgroup          CgroupSpec
	Links           []string
	OomScoreAdj     int
	PidMode         PidMode
	Privileged      bool
	PublishAllPorts bool
	ReadonlyRootfs  bool
	SecurityOpt     []string
	StorageOpt      map[string]string `json:",omitempty"`
	Tmpfs           map[string]string `json:",omitempty"`
	UTSMode         UTSMode
	UsernsMode      UsernsMode
	ShmSize         int64
	Sysctls         map[string]string `json:",omitempty"`
	Runtime         string            `json:",omitempty"`
	ConsoleSize     [2]uint
	Isolation       Isolation

	Resources

	Mounts        []Mount `json:",omitempty"`
	MaskedPaths   []string
	ReadonlyPaths []string
	Init          *bool `json:",omitempty"`
}

// EndpointIPAMConfig is the static IP configuration of an endpoint.
type EndpointIPAMConfig struct {
	IPv4Address  string   `json:",omitempty"`
	IPv6Address  string   `json:",omitempty"`
	LinkLocalIPs []string `json:",omitempty"`
}

// EndpointSettings configures one network endpoint.
//
// The endpoint settings are decoded into typed fields (not json.RawMessage)
// because the engine does so, and a type error in them fails the whole
// decode.
type EndpointSettings struct {
	IPAMConfig          *EndpointIPAMConfig
	Links               []string
	Aliases             []string
	NetworkID           string
	EndpointID          string
	Gateway             string
	IPAddress           string
	IPPrefixLen         int
	IPv6Gateway         string
	GlobalIPv6Address   string
	GlobalIPv6PrefixLen int
	MacAddress          string
	DriverOpts          map[string]string
}

// NetworkingConfig holds the per-network endpoint settings.
type NetworkingConfig struct {
	EndpointsConfig map[string]*EndpointSettings
}

// ContainerConfigWrapper has the same layout as the engine's wrapper: the
// embedded *Config and *HostConfig promote their fields to the top level,
// "HostConfig" names the inner host config.
type ContainerConfigWrapper struct {
	*Config
	InnerHostConfig  *HostConfig       `json:"HostConfig,omitempty"`
	Cpuset           string            `json:",omitempty"`
	NetworkingConfig *NetworkingConfig `json:"NetworkingConfig,omitempty"`
	*HostConfig
}

// getHostConfig picks the effective host config like the engine does: the
// inner "HostConfig" object when present (taking a few deprecated top-level
// resource fields where the inner ones are zero), else the top-level one.
func (w *ContainerConfigWrapper) getHostConfig() *HostConfig {
	top := w.HostConfig
	inner := w.InnerHostConfig
	hc := top
	switch {
	case top == nil && inner != nil:
		hc = inner
	case top != nil && inner != nil:
		if inner.Memory == 0 && top.Memory != 0 {
			inner.Memory = top.Memory
		}
		if inner.MemorySwap == 0 && top.MemorySwap != 0 {
			inner.MemorySwap = top.MemorySwap
		}
		if inner.CPUShares == 0 && top.CPUShares != 0 {
			inner.CPUShares = top.CPUShares
		}
		if inner.CpusetCpus == "" && top.CpusetCpus != "" {
			inner.CpusetCpus = top.CpusetCpus
		}
		if inner.VolumeDriver == "" && top.VolumeDriver != "" {
			inner.VolumeDriver = top.VolumeDriver
		}
		hc = inner
	}
	if hc != nil {
		if hc.CpusetCpus == "" && w.Cpuset != "" {
			hc.CpusetCpus = w.Cpuset
		}
		// runconfig.SetDefaultNetModeIfBlank
		if hc.NetworkMode == "" {
			hc.NetworkMode = "default"
		}
	}
	return hc
}

type mountSource struct {
	Type   string `json:"type"`
	Source string `json:"source"`
}

type okResult struct {
	OK                bool          `json:"ok"`
	UsernsMode        string        `json:"usernsMode"`
	Privileged        bool          `json:"privileged"`
	CapAdd            []string      `json:"capAdd"`
	SecurityOpt       []string      `json:"securityOpt"`
	User              string        `json:"user"`
	PidMode           string        `json:"pidMode"`
	IpcMode           string        `json:"ipcMode"`
	UtsMode           string        `json:"utsMode"`
	NetworkMode       string        `json:"networkMode"`
	CgroupnsMode      string        `json:"cgroupnsMode"`
	Devices           int           `json:"devices"`
	DeviceCgroupRules int           `json:"deviceCgroupRules"`
	Binds             []string      `json:"binds"`
	MountSources      []mountSource `json:"mountSources"`
}

type errResult struct {
	OK           bool   `json:"ok"`
	Error        string `json:"error"`
	HarnessError bool   `json:"harnessError,omitempty"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// decodeBody runs one body through the engine's decoding path.
func decodeBody(body []byte, startMode bool) interface{} {
	var w ContainerConfigWrapper
	// Both runconfig.decodeContainerConfig and runconfig.decodeHostConfig
	// (20.10) do exactly this: one Decode call, trailing data never looked at.
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&w); err != nil {
		return errResult{Error: err.Error()}
	}
	hc := w.getHostConfig()

	res := okResult{
		OK:           true,
		CapAdd:       []string{},
		SecurityOpt:  []string{},
		Binds:        []string{},
		MountSources: []mountSource{},
	}
	// decodeHostConfig (the start path) discards the Config part.
	if !startMode && w.Config != nil {
		res.User = w.Config.User
	}
	if hc != nil {
		res.UsernsMode = string(hc.UsernsMode)
		res.Privileged = hc.Privileged
		res.CapAdd = nonNil(hc.CapAdd)
		res.SecurityOpt = nonNil(hc.SecurityOpt)
		res.PidMode = string(hc.PidMode)
		res.IpcMode = string(hc.IpcMode)
		res.UtsMode = string(hc.UTSMode)
		res.NetworkMode = string(hc.NetworkMode)
		res.CgroupnsMode = string(hc.CgroupnsMode)
		res.Devices = len(hc.Devices)
		res.DeviceCgroupRules = len(hc.DeviceCgroupRules)
		res.Binds = nonNil(hc.Binds)
		for _, m := range hc.Mounts {
			res.MountSources = append(res.MountSources, mountSource{Type: string(m.Type), Source: m.Source})
		}
	}
	return res
}

// handleLine turns one input line into one output value, never panicking.
func handleLine(line []byte, startMode bool) (out interface{}) {
	defer func() {
		if r := recover(); r != nil {
			out = errResult{Error: fmt.Sprintf("panic: %v", r), HarnessError: true}
		}
	}()
	line = bytes.TrimSpace(line)
	body := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	n, err := base64.StdEncoding.Decode(body, line)
	if err != nil {
		return errResult{Error: "base64: " + err.Error(), HarnessError: true}
	}
	return decodeBody(body[:n], startMode)
}

func main() {
	startMode := flag.Bool("start", false, "decode as a legacy POST /containers/{id}/start body")
	flag.Parse()

	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for {
		line, readErr := in.ReadBytes('\n')
		if len(line) > 0 || readErr == nil {
			encoded, err := json.Marshal(handleLine(line, *startMode))
			if err != nil {
				encoded, _ = json.Marshal(errResult{Error: "marshal: " + err.Error(), HarnessError: true})
			}
			out.Write(encoded)
			out.WriteByte('\n')
			if err := out.Flush(); err != nil {
				fmt.Fprintln(os.Stderr, "gojson: write:", err)
				os.Exit(1)
			}
		}
		if readErr != nil {
			if readErr != io.EOF {
				fmt.Fprintln(os.Stderr, "gojson: read:", readErr)
				os.Exit(1)
			}
			return
		}
	}
}
